"""Segmentation evaluation: Dice, Jaccard and HD95 per test image or volume, averaged with patient-level CIs.

Images are scored on the preprocessed square grid (HD95 in its pixels: 2-D sets carry no reliable spacing).
Volumes are scored on each label map's own canonical grid at full resolution, the predicted slices mapped
back by the inverse slice geometry, HD95 in millimetres from the voxel spacing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from medprobe.atomic import atomic_path
from medprobe.metrics_table import FLOAT_FORMAT, metrics_frame, write_metrics
from medprobe.provenance import StageRecord

log = logging.getLogger("medprobe")


def case_scores(spec: dict, items: pd.DataFrame, prediction: np.ndarray, masks_test: np.ndarray, root: Path,
                class_names: list[str]) -> pd.DataFrame:
    """One row per (test case, class): case_id, patient_id, label, dice, jaccard, hd95."""
    from medprobe.evaluate.segmentation import segmentation_scores
    from medprobe.io.volumes import read_nifti_labels
    from medprobe.stages.segment import predicted_volume, volume_rows

    labels = list(range(1, len(class_names) + 1))
    rows = []
    for _, item in volume_rows(items, "test").iterrows():
        if spec["dimensionality"] == "3d":
            truth = read_nifti_labels(root / item["mask_file"])
            predicted = predicted_volume(prediction[item["slice_start"]:item["slice_stop"]], spec, truth)
            scores = segmentation_scores(predicted, truth.data, labels, spacing=truth.spacing)
        else:
            scores = segmentation_scores(prediction[item["row"]], masks_test[item["row"]], labels)
        for label, name in zip(labels, class_names):
            rows.append({"case_id": item["item_id"], "patient_id": item["patient_id"], "label": name,
                         **scores[label]})
    return pd.DataFrame(rows)


def evaluate_segmentation_stage(wildcards: dict, settings: dict, predictions: str, upstream: str,
                                processed_dir: str, manifest: str, metrics: str, cases: str, provenance: str,
                                rule: str | None = None, log_path: str | None = None) -> None:
    from medprobe.download import dataset_root
    from medprobe.evaluate.segmentation import summarize_cases
    from medprobe.masks import segmentation_task

    seed = int(wildcards["seed"])
    processed_dir = Path(processed_dir)
    record = StageRecord("evaluate_segmentation", __name__, {"settings": settings, "seed": seed},
                         inputs={"predictions": predictions, "items": processed_dir / "items.parquet",
                                 "masks_test": processed_dir / "masks_test.npy", "manifest": manifest},
                         upstream={"segment": upstream}, rule=rule, log=log_path)
    prov_id = record.identity_id()
    spec = json.loads((processed_dir / "spec.json").read_text())
    task_name, task = segmentation_task(spec["tasks"])
    items = pd.read_parquet(processed_dir / "items.parquet")
    per_case = case_scores(spec, items, np.load(predictions), np.load(processed_dir / "masks_test.npy"),
                           dataset_root(Path(manifest).parent), task["labels"])
    summary = summarize_cases(per_case, n_bootstrap=settings["n_bootstrap"], ci=settings["ci"], seed=seed)
    n_total = int((items["split"] == "test").sum())
    rows = [{
        "dataset": wildcards["dataset"], "task": task_name, "control": False, "backbone": wildcards["backbone"],
        "resolution": int(wildcards["res"]), "probe": wildcards["head"], "seed": seed,
        "metric": row["metric"] if row["label"] == "macro" else f"{row['metric']}[{row['label']}]",
        "value": row["value"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
        "n_boot": settings["n_bootstrap"] if np.isfinite(row["ci_low"]) else 0,
        "n_evaluated": int(row["n_cases"]), "n_total": n_total, "provenance_id": prov_id,
    } for _, row in summary.iterrows()]
    log.info("%s: %s", task_name, {r["metric"]: round(r["value"], 4) for r in rows if "[" not in r["metric"]})
    with atomic_path(metrics) as tmp:
        write_metrics(metrics_frame(rows), tmp)
    with atomic_path(cases) as tmp:
        per_case.to_csv(tmp, index=False, float_format=FLOAT_FORMAT)
    record.write(provenance, outputs={"metrics": metrics, "cases": cases})
