"""Few-shot probe: n training examples per class, several random draws, never touching val or test.

The protocol of PROTOCOLS.md (n in {1, 2, 4, 8, 16}; study B counts patients on NIH): each draw (one per
seed) takes, for every class of every label, the first n units (patients or items) holding that class in
one seeded permutation of the train split's units, and trains on all train items of the chosen units.
Binary and multi-label tasks count both classes of each label (n positives and n negatives), multiclass
tasks each class. Draws are nested (the 2-shot set contains the 1-shot set) and depend only on the seed
and the train labels, not on the order of rows, so every backbone and resolution sees the same patients.

Nothing is tuned: with a handful of examples there is no held-out data to choose on, and choosing on the
full validation split (or, as one of the studies' code did, training on it) would not be few-shot. The
classifier therefore runs at fixed settings: logistic regression at a given C on standardised features,
or the kNN vote with k capped at the draw's size.
"""

from __future__ import annotations

import numpy as np

from medprobe.evaluate.metrics import label_indicator
from medprobe.probes.logreg import counted_convergence_warnings, fit_predict_logreg

DEFAULTS = {
    "shots": [1, 2, 4, 8, 16],
    "unit": "patient",  # what n counts: "patient" (study B on NIH) or "item" (one image, volume or slide)
    "classifier": "logreg",  # or "knn"
    "c": 1.0,  # logreg: inverse regularisation strength, fixed
    "max_iter": 1000,
    "k": 10,  # knn: capped at the number of training items in the draw
    "temperature": 0.07,
}
CLASSIFIERS = ("logreg", "knn")
UNITS = ("patient", "item")


def settings(params: dict) -> dict:
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown few-shot parameters {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    chosen = {**DEFAULTS, **params}
    shots = sorted({int(n) for n in chosen["shots"]})
    if not shots or shots[0] < 1:
        raise ValueError(f"few-shot shots must be a non-empty list of integers >= 1, got {chosen['shots']}")
    if chosen["classifier"] not in CLASSIFIERS:
        raise ValueError(f"few-shot classifier must be one of {CLASSIFIERS}, got {chosen['classifier']!r}")
    if chosen["unit"] not in UNITS:
        raise ValueError(f"few-shot unit must be one of {UNITS}, got {chosen['unit']!r}")
    return {**chosen, "shots": shots}


def _buckets(train_y, task_type: str, n_columns: int) -> tuple[np.ndarray, list[str]]:
    """(n_items, B) membership of each train item in each class bucket, and the buckets' names."""
    targets, known = label_indicator(train_y, n_columns, task_type)
    if task_type == "multiclass":
        return targets, [f"class {c}" for c in range(n_columns)]
    members = np.concatenate([targets & known, ~targets & known], axis=1)
    names = [f"label column {j} = 1" for j in range(n_columns)] + [f"label column {j} = 0" for j in range(n_columns)]
    return members, names


def draw_few_shot(train_y, units, shots: list[int], task_type: str, n_columns: int, seed: int) -> dict:
    """For each n of shots: the train rows of the draw, its units, and the buckets holding fewer than n units.

    A class with fewer than n units in train gives all it has; the shortfall is returned, not hidden.
    """
    members, names = _buckets(train_y, task_type, n_columns)
    unit_ids, unit_of_row = np.unique(np.asarray(units).astype(str), return_inverse=True)
    unit_members = np.zeros((len(unit_ids), members.shape[1]), dtype=bool)
    np.logical_or.at(unit_members, unit_of_row, members)
    order = np.random.default_rng(seed).permutation(len(unit_ids))
    candidates = [order[unit_members[order, b]] for b in range(members.shape[1])]
    draws = {}
    for n in shots:
        chosen = np.unique(np.concatenate([c[:n] for c in candidates]))
        draws[n] = {
            "rows": np.flatnonzero(np.isin(unit_of_row, chosen)),
            "units": unit_ids[chosen].tolist(),
            "short": {name: len(c) for name, c in zip(names, candidates) if len(c) < n},
        }
    return draws


def _fit_logreg(x, y, test_x, options: dict, task_type: str, n_columns: int, seed: int) -> np.ndarray:
    fit = dict(c=options["c"], task_type=task_type, max_iter=options["max_iter"], seed=seed, n_classes=n_columns)
    if task_type == "multiclass":
        return fit_predict_logreg(x, y, test_x, **fit)
    columns = []
    for label in range(n_columns):
        known = y[:, label] >= 0
        columns.append(fit_predict_logreg(x[known], y[known, label], test_x, **fit))
    return np.concatenate(columns, axis=1)


def _fit_knn(x, y, test_x, options: dict, task_type: str, n_columns: int) -> np.ndarray:
    from medprobe.probes.knn import knn_scores

    return knn_scores(x, y, test_x, min(int(options["k"]), len(x)), options["temperature"], task_type=task_type,
                      n_classes=n_columns if task_type == "multiclass" else None)


def run_fewshot(train_x, train_y, test_x, params: dict, task_type: str, seed: int, *, train_units,
                n_columns: int) -> tuple[dict[int, np.ndarray], dict]:
    """Test scores for each shot count ({n: (n_test, n_columns)}) and, per n, the draw that produced them.

    train_units: each train row's patient id (unit "patient") or item id (unit "item"). The validation
    split is not an argument: few-shot never reads it.
    """
    options = settings(params)
    train_x, test_x = np.asarray(train_x, dtype=np.float64), np.asarray(test_x, dtype=np.float64)
    train_y = np.asarray(train_y)
    draws = draw_few_shot(train_y, train_units, options["shots"], task_type, n_columns, seed)
    scores, info = {}, {"shots": {}, "classifier": options["classifier"], "unit": options["unit"]}
    with counted_convergence_warnings() as convergence_warnings:
        for n, draw in draws.items():
            empty = [name for name, count in draw["short"].items() if count == 0]
            if empty:
                raise ValueError(f"train split has no example of {empty}: a {n}-shot draw cannot include one")
            x, y = train_x[draw["rows"]], train_y[draw["rows"]]
            if options["classifier"] == "logreg":
                scores[n] = _fit_logreg(x, y, test_x, options, task_type, n_columns, seed)
            else:
                scores[n] = _fit_knn(x, y, test_x, options, task_type, n_columns)
            info["shots"][n] = {"n_items": len(draw["rows"]), "n_units": len(draw["units"]), "units": draw["units"],
                                **({"short": draw["short"]} if draw["short"] else {})}
            if options["classifier"] == "knn":
                info["shots"][n]["k"] = min(int(options["k"]), len(x))
    if options["classifier"] == "logreg":
        info["n_convergence_warnings"] = convergence_warnings["n"]
    return scores, info
