"""Evaluate stage: predictions -> metric rows with patient-level bootstrap CIs."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from medprobe.atomic import atomic_path
from medprobe.metrics_table import metrics_frame, write_metrics
from medprobe.provenance import StageRecord
from medprobe.stages.probe import classification_tasks

log = logging.getLogger("medprobe")


def evaluate_stage(wildcards: dict, settings: dict, predictions: str, upstream: str, items: str,
                   dataset_spec: str, metrics: str, provenance: str, rule: str | None = None,
                   log_path: str | None = None) -> None:
    from medprobe.evaluate.metrics import bootstrap_ci, class_indices, compute_metrics

    seed = int(wildcards["seed"])
    record = StageRecord("evaluate", __name__, {"settings": settings, "seed": seed},
                         inputs={"predictions": predictions, "items": items,
                                 "dataset_spec": dataset_spec},
                         upstream={"probe": upstream}, rule=rule, log=log_path)
    prov_id = record.identity_id()
    preds = pd.read_parquet(predictions)
    all_items = pd.read_parquet(items)
    n_total = int((all_items["split"] == "test").sum())
    tasks = json.loads(Path(dataset_spec).read_text())["tasks"]
    # A few-shot probe's predictions hold one test scoring per shot count, each scored on its own.
    shot_counts = sorted(preds["shots"].unique()) if "shots" in preds else [None]
    rows = []
    for (task_name, task), shots in itertools.product(classification_tasks(tasks).items(), shot_counts):
        part = preds[preds["task"] == task_name]
        if shots is not None:
            part = part[part["shots"] == shots]
        wide_true = part.pivot(index="item_id", columns="label", values="y_true")[task["labels"]]
        wide_score = part.pivot(index="item_id", columns="label", values="y_score")[task["labels"]]
        groups = part.drop_duplicates("item_id").set_index("item_id").loc[wide_true.index, "patient_id"]
        y_true = wide_true.to_numpy()  # binary/multilabel keep -1 (missing): the metrics mask it per label
        if task["type"] == "multiclass":
            y_true = class_indices(y_true)
        y_score = wide_score.to_numpy()
        point = compute_metrics(y_true, y_score, task["type"], task["labels"],
                                threshold=settings["threshold"])
        intervals = bootstrap_ci(y_true, y_score, groups.to_numpy(), task["type"], task["labels"],
                                 n_boot=settings["n_bootstrap"], seed=seed, ci=settings["ci"],
                                 threshold=settings["threshold"]) if settings["n_bootstrap"] else {}
        log.info("task %s%s: %s", task_name, "" if shots is None else f", {shots} shots",
                 {k: round(v, 4) for k, v in point.items() if not k.startswith("n_")})
        for metric, value in point.items():
            if metric.startswith("n_"):
                continue
            low, high, n_valid = intervals.get(metric, (np.nan, np.nan, 0))
            rows.append({
                "dataset": wildcards["dataset"], "task": task_name,
                "control": bool(task.get("control", False)), "backbone": wildcards["backbone"],
                "resolution": int(wildcards["res"]), "probe": wildcards["probe"],
                "shots": None if shots is None else int(shots), "seed": seed,
                "metric": metric, "value": value, "ci_low": low, "ci_high": high,
                "n_boot": n_valid, "n_evaluated": len(y_true), "n_total": n_total,
                "provenance_id": prov_id,
            })
    with atomic_path(metrics) as tmp:
        write_metrics(metrics_frame(rows), tmp)
    record.write(provenance, outputs={"metrics": metrics})
