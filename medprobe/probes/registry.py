"""Probe registry: name -> a function fit on train, tuned on val, scoring test.

Every classification probe has the same signature, so the pipeline runs any of them the same way:
run(train_x, train_y, val_x, val_y, test_x, params, task_type, seed) -> (test_scores, info); few-shot
probes, which must not see val, take the one variant described at PROBES.
Segmentation heads are run by medprobe.stages.segment through medprobe.probes.segmentation.
"""

from __future__ import annotations

from medprobe.registry import lookup


def params_without_features(params: dict) -> dict:
    """The probe's own options: which tokens it reads ("features") is the probe stage's business."""
    return {k: v for k, v in params.items() if k != "features"}


def run_knn(train_x, train_y, val_x, val_y, test_x, params, task_type, seed):
    from medprobe.probes.knn import select_and_predict_knn

    return select_and_predict_knn(train_x, train_y, val_x, val_y, test_x, ks=params["k"],
                                  temperature=params["temperature"], task_type=task_type, seed=seed)


def run_logreg(train_x, train_y, val_x, val_y, test_x, params, task_type, seed):
    from medprobe.probes.logreg import c_grid, select_and_predict_logreg

    grid = c_grid(params["c_min"], params["c_max"], params["c_num"])
    return select_and_predict_logreg(train_x, train_y, val_x, val_y, test_x, c_grid=grid,
                                     task_type=task_type, max_iter=params["max_iter"], seed=seed)


def run_linear(train_x, train_y, val_x, val_y, test_x, params, task_type, seed):
    from medprobe.probes.linear import run_linear as fit_linear

    return fit_linear(train_x, train_y, val_x, val_y, test_x, params_without_features(params),
                      task_type, seed)


def run_fewshot(train_x, train_y, test_x, params, task_type, seed, *, train_patients, train_items, n_columns):
    from medprobe.probes.fewshot import run_fewshot as fit_fewshot
    from medprobe.probes.fewshot import settings

    options = params_without_features(params)
    units = train_patients if settings(options)["unit"] == "patient" else train_items
    return fit_fewshot(train_x, train_y, test_x, options, task_type, seed, train_units=units, n_columns=n_columns)


def run_mil(train_x, train_y, val_x, val_y, test_x, params, task_type, seed):
    from medprobe.probes.mil import run_mil as fit_mil

    return fit_mil(train_x, train_y, val_x, val_y, test_x, params_without_features(params),
                   task_type, seed)


# kind: "vector" probes read one feature vector per item (a volume's slices or a slide's tiles mean-pooled);
# "bags" probes read a volume's slice features or a slide's tile features as (features, offsets); "segmentation"
# heads read patch-token grids and masks.
# dims: the dataset dimensionalities a probe applies to. torch: the probe trains with torch (its job sets torch's
# thread count; the others never import it). few_shot: the probe never reads the validation split; it runs as
# run(train_x, train_y, test_x, params, task_type, seed, train_patients=, train_items=, n_columns=) and returns
# test scores per shot count ({n: scores}).
PROBES: dict[str, dict] = {
    "knn": {"run": run_knn, "kind": "vector", "dims": ("2d", "3d", "wsi"),
            "description": "cosine kNN, softmax(sim/T)-weighted vote; k chosen on val"},
    "logreg": {"run": run_logreg, "kind": "vector", "dims": ("2d", "3d", "wsi"),
               "description": "L-BFGS logistic regression on standardised features; C chosen on val"},
    "linear": {"run": run_linear, "kind": "vector", "dims": ("2d", "3d", "wsi"), "torch": True,
               "description": "linear heads on standardised features, one per learning rate, trained in one pass "
                              "(SGD, momentum, cosine); lr chosen on val, refit on train + val"},
    "fewshot": {"run": run_fewshot, "kind": "vector", "dims": ("2d", "3d", "wsi"), "few_shot": True,
                "description": "n train examples per class (patients or items), one random draw per seed, at fixed "
                               "settings (logreg C or kNN k); never reads val or test"},
    "mil": {"run": run_mil, "kind": "bags", "dims": ("3d", "wsi"), "torch": True,
            "description": "gated-attention MIL (Ilse et al. 2018) over a volume's slices or a slide's tiles; "
                           "epoch chosen on val"},
    "seg_linear": {"kind": "segmentation", "dims": ("2d", "3d"),
                   "description": "BatchNorm + 1x1 conv on patch tokens, logits upsampled; epoch chosen on val"},
    "seg_decoder": {"kind": "segmentation", "dims": ("2d", "3d"),
                    "description": "light conv decoder on patch tokens: 2-D on images, 3-D over a volume's "
                                   "stacked slice grids (study A)"},
}


def get_probe(name: str) -> dict:
    return lookup(PROBES, "probe", name)
