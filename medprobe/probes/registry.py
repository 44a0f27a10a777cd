"""Probe registry: name -> a function fit on train, tuned on val, scoring test.

Every probe has the same signature, so the pipeline runs any of them the same way:
run(train_x, train_y, val_x, val_y, test_x, params, task_type, seed) -> (test_scores, info)
"""

from __future__ import annotations

from medprobe.registry import lookup


def run_knn(train_x, train_y, val_x, val_y, test_x, params, task_type, seed):
    from medprobe.probes.knn import select_and_predict_knn

    return select_and_predict_knn(train_x, train_y, val_x, val_y, test_x, ks=params["k"],
                                  temperature=params["temperature"], task_type=task_type, seed=seed)


def run_logreg(train_x, train_y, val_x, val_y, test_x, params, task_type, seed):
    from medprobe.probes.logreg import c_grid, select_and_predict_logreg

    grid = c_grid(params["c_min"], params["c_max"], params["c_num"])
    return select_and_predict_logreg(train_x, train_y, val_x, val_y, test_x, c_grid=grid,
                                     task_type=task_type, max_iter=params["max_iter"], seed=seed)


PROBES: dict[str, dict] = {
    "knn": {"run": run_knn, "description": "cosine kNN, softmax(sim/T)-weighted vote; k chosen on val"},
    "logreg": {"run": run_logreg,
               "description": "L-BFGS logistic regression on standardised features; C chosen on val"},
}


def get_probe(name: str) -> dict:
    return lookup(PROBES, "probe", name)
