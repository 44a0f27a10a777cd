"""Logistic-regression probe: C chosen on validation over a log-spaced grid, refit on train + val.

Follows the DINOv2 linear-probe protocol with scikit-learn's L-BFGS solver. The sweep visits C in
ascending order with warm_start, so each fit starts from the previous, more regularised solution;
on the demo scale (320 train, 4 labels, 45 C values) a whole call takes well under a second on one
core. The test set is only ever predicted, never used for a choice. A missing (-1) binary/multilabel
label removes the item from that label's problem only, scaler included, while every test item is
still scored.
"""

import warnings
from contextlib import contextmanager

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from medprobe.evaluate.metrics import MISSING, label_indicator, macro_auroc


@contextmanager
def counted_convergence_warnings():
    """Count scikit-learn's ConvergenceWarnings (into the yielded dict's "n", for provenance) instead of showing
    them; other warnings are shown as usual."""
    counted = {"n": 0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        yield counted
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            counted["n"] += 1
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def c_grid(min_c: float, max_c: float, num: int) -> np.ndarray:
    """num inverse-regularisation strengths, log-spaced from min_c to max_c inclusive."""
    if not 0 < min_c <= max_c or num < 1:
        raise ValueError(f"need 0 < min_c <= max_c and num >= 1, got {min_c}, {max_c}, {num}")
    return np.logspace(np.log10(min_c), np.log10(max_c), num)


def _sweep(train_x, train_target, val_x, val_target, cs, task_type, max_iter, seed, n_classes) -> list[float]:
    """Validation macro AUROC for each C, warm-starting each fit from the previous C's solution."""
    scaler = StandardScaler().fit(train_x)
    train_z, val_z = scaler.transform(train_x), scaler.transform(val_x)
    model = LogisticRegression(solver="lbfgs", max_iter=max_iter, warm_start=True, random_state=seed)
    val_auroc = []
    for c in cs:
        model.set_params(C=c).fit(train_z, train_target)
        val_auroc.append(macro_auroc(val_target, _probabilities(model, val_z, task_type, n_classes), task_type))
    return val_auroc


def _probabilities(model: LogisticRegression, z: np.ndarray, task_type: str, n_classes: int) -> np.ndarray:
    """(n, 1) positive probability, or (n, n_classes) with zeros for classes absent from training."""
    probabilities = model.predict_proba(z)
    if task_type != "multiclass":
        return probabilities[:, 1:]
    full = np.zeros((len(z), n_classes))
    full[:, model.classes_] = probabilities
    return full


def fit_predict_logreg(train_x, train_target, test_x, c, task_type, max_iter, seed, n_classes) -> np.ndarray:
    """Fit one model at a fixed C on standardised train features; test probabilities as _probabilities gives."""
    scaler = StandardScaler().fit(train_x)
    model = LogisticRegression(solver="lbfgs", C=c, max_iter=max_iter, random_state=seed)
    model.fit(scaler.transform(train_x), train_target)
    return _probabilities(model, scaler.transform(test_x), task_type, n_classes)


def _known_rows(column: np.ndarray) -> np.ndarray | slice:
    """Rows whose label is known; a full slice when all are, so that the features are not copied."""
    known = column != MISSING
    return slice(None) if known.all() else known


def _choose(cs: np.ndarray, val_auroc: list[float], what: str) -> float:
    """C with the best validation AUROC; ties go to the smaller C (stronger regularisation)."""
    if not np.isfinite(val_auroc).any():
        raise ValueError(f"{what} has a single class in validation, so AUROC cannot choose C")
    return float(cs[int(np.nanargmax(val_auroc))])


def select_and_predict_logreg(
    train_x,
    train_y,
    val_x,
    val_y,
    test_x,
    c_grid: np.ndarray,
    task_type: str,
    max_iter: int,
    seed: int,
    *,
    n_classes: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Test scores ((n, L) positive probabilities or (n, C) class probabilities) and selection info.

    Binary/multilabel: one independent problem per label, each on the train/val items where that label
    is known, with its own C chosen by that label's validation AUROC. Multiclass: one multinomial model,
    C chosen by one-vs-rest macro AUROC; n_classes defaults to max(train, val) + 1. info holds the
    chosen C per label ("c"), validation AUROC per label per C ("val_auroc", lists in grid order), the
    ascending grid ("c_grid") and the number of ConvergenceWarnings ("n_convergence_warnings"), which
    are counted, not shown.
    """
    cs = np.sort(np.asarray(c_grid, dtype=np.float64))
    if cs.ndim != 1 or len(cs) == 0 or not (cs > 0).all():
        raise ValueError("c_grid must be a non-empty 1-D array of positive values")
    train_x, val_x, test_x = (np.asarray(x, dtype=np.float64) for x in (train_x, val_x, test_x))
    train_y, val_y = np.asarray(train_y), np.asarray(val_y)
    if task_type == "multiclass" and n_classes is None:
        n_classes = int(max(train_y.max(), val_y.max())) + 1
    n_columns = n_classes if task_type == "multiclass" else np.shape(train_y)[-1]
    label_indicator(train_y, n_columns, task_type)
    label_indicator(val_y, n_columns, task_type)

    all_x, all_y = np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
    with counted_convergence_warnings() as convergence_warnings:
        if task_type == "multiclass":
            if len(np.unique(train_y)) < 2:
                raise ValueError("train has a single class; logistic regression needs at least two")
            val_auroc = [_sweep(train_x, train_y, val_x, val_y, cs, task_type, max_iter, seed, n_classes)]
            chosen = [_choose(cs, val_auroc[0], "every class")]
            test_scores = fit_predict_logreg(all_x, all_y, test_x, chosen[0], task_type, max_iter, seed, n_classes)
        else:
            val_auroc, chosen, columns = [], [], []
            for label in range(train_y.shape[1]):
                # Validation keeps every row: the AUROC itself leaves out the rows where the label is missing.
                train_rows, all_rows = _known_rows(train_y[:, label]), _known_rows(all_y[:, label])
                if len(np.unique(train_y[train_rows, label])) < 2:
                    raise ValueError(
                        f"label column {label} has a single class in train; logistic regression needs both"
                    )
                label_auroc = _sweep(
                    train_x[train_rows],
                    train_y[train_rows, label],
                    val_x,
                    val_y[:, label : label + 1],
                    cs,
                    task_type,
                    max_iter,
                    seed,
                    n_classes,
                )
                val_auroc.append(label_auroc)
                chosen.append(_choose(cs, label_auroc, f"label column {label}"))
                label_scores = fit_predict_logreg(
                    all_x[all_rows], all_y[all_rows, label], test_x, chosen[-1], task_type, max_iter, seed, n_classes
                )
                columns.append(label_scores)
            test_scores = np.concatenate(columns, axis=1)
    info = {
        "c": chosen,
        "val_auroc": val_auroc,
        "c_grid": cs.tolist(),
        "n_convergence_warnings": convergence_warnings["n"],
        "max_iter": int(max_iter),
    }
    return test_scores, info
