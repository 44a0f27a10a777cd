"""One function per DAG stage. Each takes plain paths and parameters, does the work, and writes
its provenance record last. The Snakemake scripts only wire snakemake.input/output/params here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from medprobe.atomic import atomic_path, write_json
from medprobe.datasets.registry import get_dataset
from medprobe.provenance import StageRecord, chain, load_record
from medprobe.splits import SPLITS

log = logging.getLogger("medprobe")
FLOAT_FORMAT = "%.6f"
METRIC_COLUMNS = [
    "dataset", "task", "control", "backbone", "resolution", "probe", "seed", "metric", "value",
    "ci_low", "ci_high", "n_boot", "n_evaluated", "n_total", "provenance_id",
]


def download_stage(dataset: str, options: dict, manifest: str, provenance: str,
                   rule: str | None = None, log_path: str | None = None) -> None:
    from medprobe.download import fetch_dataset

    record = StageRecord("download", {"dataset": dataset, "options": options,
                                      "registry_entry": get_dataset(dataset)},
                         rule=rule, log=log_path)
    written = fetch_dataset(dataset, Path(manifest).parent, options)
    assert Path(written) == Path(manifest), (written, manifest)
    record.write(provenance, outputs={"manifest": manifest})


def preprocess_stage(dataset: str, settings: dict, manifest: str, upstream: str, outputs: dict,
                     rule: str | None = None, log_path: str | None = None) -> None:
    from medprobe.preprocess import preprocess_2d

    entry = get_dataset(dataset)
    record = StageRecord("preprocess", {"dataset": dataset, "settings": settings},
                         inputs={"manifest": manifest}, upstream={"download": upstream},
                         rule=rule, log=log_path)
    out_dir = Path(outputs["table"]).parent
    spec = preprocess_2d(dataset, entry, Path(manifest).parent, out_dir, size=settings["size"],
                         resize_policy=settings["resize_policy"],
                         voi_fallback=settings["voi_fallback"],
                         percentiles=tuple(settings["percentiles"]), on_error=settings["on_error"])
    counts = spec["counts"]
    skipped = sum(c["total"] - c["ok"] for c in counts.values())
    log.info("preprocessed %s: %s (%d skipped)", dataset, counts, skipped)
    record.write(outputs["provenance"],
                 outputs={"items": outputs["table"], "split": outputs["split"], "spec": outputs["spec"],
                          **{f"array_{s}": str(out_dir / f"{s}.npy") for s in SPLITS}},
                 extra={"counts": counts})


def extract_stage(dataset: str, backbone: str, res: int, settings: dict, processed_dir: str,
                  upstream: str, out_dir: str, threads: int = 1, rule: str | None = None,
                  log_path: str | None = None) -> None:
    import torch

    from medprobe.backbones.load import load_backbone
    from medprobe.features.extract import (choose_device, choose_num_workers, choose_precision,
                                           extract_array)

    torch.set_num_threads(max(1, threads))
    processed_dir, out_dir = Path(processed_dir), Path(out_dir)
    arrays = {s: processed_dir / f"{s}.npy" for s in SPLITS}
    record = StageRecord(
        "extract_features",
        {"dataset": dataset, "backbone": backbone, "resolution": res,
         "batch_size": settings["batch_size"], "precision": settings["precision"]},
        inputs={f"array_{s}": p for s, p in arrays.items()} | {"items": processed_dir / "items.parquet"},
        upstream={"preprocess": upstream}, rule=rule, log=log_path,
    )
    device = choose_device(settings["device"])
    precision = choose_precision(settings["precision"], device)
    module, identity = load_backbone(backbone)
    module = module.to(device)
    log.info("extracting %s / %s at %d px on %s (%s)", dataset, backbone, res, device, precision)
    shapes = {}
    for split, array in arrays.items():
        shapes[split] = extract_array(array, out_dir / f"{split}.npy", module, res,
                                      batch_size=settings["batch_size"],
                                      num_workers=choose_num_workers(settings["num_workers"], device),
                                      device=device,
                                      precision=precision, desc=f"{backbone} {res}px {split}")
    tokens = list(module(torch.zeros(1, 1, res, res, device=device)).keys())
    items = pd.read_parquet(processed_dir / "items.parquet")
    index = items[items["status"] == "ok"].drop(columns=["status"]).reset_index(drop=True)
    with atomic_path(out_dir / "index.parquet") as tmp:
        index.to_parquet(tmp, index=False)
    preprocess_spec = json.loads((processed_dir / "spec.json").read_text())
    spec = {
        "dataset": dataset,
        "backbone": identity,
        "resolution": res,
        "input": {"channels": "grayscale replicated to 3" if identity["source"] == "timm" else "grayscale",
                  "resize": "bilinear, antialiased, from the preprocessed square image",
                  "preprocess": preprocess_spec},
        "tokens": tokens,
        "layout": "(items, tokens, dim) float16, rows aligned to index.parquet 'row' within each split",
        "shapes": {s: list(v) for s, v in shapes.items()},
        "device": str(device),
        "device_type": device.type,
        "precision": precision,
        "tasks": preprocess_spec["tasks"],
    }
    write_json(out_dir / "spec.json", spec)
    record.write(out_dir / "provenance.json",
                 outputs={**{s: out_dir / f"{s}.npy" for s in SPLITS},
                          "index": out_dir / "index.parquet", "spec": out_dir / "spec.json"},
                 extra={"backbone": identity, "device": str(device), "precision": precision})


def task_targets(index: pd.DataFrame, task: dict) -> np.ndarray:
    """0/1 matrix (n, L) for binary/multilabel tasks; class indices (n,) for multiclass."""
    matrix = index[[f"label_{label}" for label in task["labels"]]].to_numpy(dtype=np.int64)
    return matrix.argmax(axis=1) if task["type"] == "multiclass" else matrix


def select_features(array: np.ndarray, tokens: list[str], which: str) -> np.ndarray:
    if which != "all":
        if which not in tokens:
            raise ValueError(f"probe features '{which}' not available; this backbone wrote {tokens}")
        array = array[:, [tokens.index(which)]]
    return array.reshape(len(array), -1).astype(np.float32)


def probe_stage(probe: str, params: dict, seed: int, feature_dir: str, upstream: str,
                predictions: str, provenance: str, threads: int = 1, rule: str | None = None,
                log_path: str | None = None) -> None:
    from threadpoolctl import threadpool_limits

    from medprobe.probes.registry import get_probe

    feature_dir = Path(feature_dir)
    spec = json.loads((feature_dir / "spec.json").read_text())
    params = {"features": "all", **params}
    record = StageRecord(
        "probe", {"probe": probe, "params": params, "seed": seed},
        inputs={**{s: feature_dir / f"{s}.npy" for s in SPLITS}, "index": feature_dir / "index.parquet"},
        upstream={"extract_features": upstream}, rule=rule, log=log_path,
    )
    index = pd.read_parquet(feature_dir / "index.parquet")
    parts = {s: index[index["split"] == s].sort_values("row") for s in SPLITS}
    x = {s: select_features(np.load(feature_dir / f"{s}.npy"), spec["tokens"], params["features"])
         for s in SPLITS}
    run = get_probe(probe)["run"]
    rows, info = [], {}
    for task_name, task in spec["tasks"].items():
        y = {s: task_targets(parts[s], task) for s in SPLITS}
        try:
            # Small fits are slower with many BLAS threads than with the job's share of cores.
            with threadpool_limits(limits=max(1, threads)):
                scores, info[task_name] = run(x["train"], y["train"], x["val"], y["val"], x["test"],
                                              params, task["type"], seed)
        except ValueError as err:
            raise ValueError(f"{probe} on {feature_dir}, task '{task_name}' "
                             f"(label columns in order: {task['labels']}): {err}") from err
        truth = parts["test"][[f"label_{label}" for label in task["labels"]]].to_numpy()
        for j, label in enumerate(task["labels"]):
            rows.append(pd.DataFrame({
                "item_id": parts["test"]["item_id"].to_numpy(),
                "patient_id": parts["test"]["patient_id"].to_numpy(),
                "task": task_name, "label": label,
                "y_true": truth[:, j].astype(np.int8), "y_score": scores[:, j].astype(np.float64),
            }))
        log.info("%s on task %s: %s", probe, task_name, {k: v for k, v in info[task_name].items()
                                                           if not isinstance(v, (list, dict))})
    with atomic_path(predictions) as tmp:
        pd.concat(rows, ignore_index=True).to_parquet(tmp, index=False)
    record.write(provenance, outputs={"predictions": predictions}, extra={"selection": info})


def evaluate_stage(wildcards: dict, settings: dict, predictions: str, upstream: str, items: str,
                   dataset_spec: str, metrics: str, provenance: str, rule: str | None = None,
                   log_path: str | None = None) -> None:
    from medprobe.evaluate.metrics import bootstrap_ci, compute_metrics

    seed = int(wildcards["seed"])
    record = StageRecord("evaluate", {"settings": settings, "seed": seed},
                         inputs={"predictions": predictions, "items": items,
                                 "dataset_spec": dataset_spec},
                         upstream={"probe": upstream}, rule=rule, log=log_path)
    prov_id = record.identity_id()
    preds = pd.read_parquet(predictions)
    all_items = pd.read_parquet(items)
    n_total = int((all_items["split"] == "test").sum())
    tasks = json.loads(Path(dataset_spec).read_text())["tasks"]
    rows = []
    for task_name, task in tasks.items():
        part = preds[preds["task"] == task_name]
        wide_true = part.pivot(index="item_id", columns="label", values="y_true")[task["labels"]]
        wide_score = part.pivot(index="item_id", columns="label", values="y_score")[task["labels"]]
        groups = part.drop_duplicates("item_id").set_index("item_id").loc[wide_true.index, "patient_id"]
        y_true = wide_true.to_numpy()
        if task["type"] == "multiclass":
            y_true = y_true.argmax(axis=1)
        y_score = wide_score.to_numpy()
        point = compute_metrics(y_true, y_score, task["type"], task["labels"],
                                threshold=settings["threshold"])
        intervals = bootstrap_ci(y_true, y_score, groups.to_numpy(), task["type"], task["labels"],
                                 n_boot=settings["n_bootstrap"], seed=seed, ci=settings["ci"])
        for metric, value in point.items():
            if metric.startswith("n_"):
                continue
            low, high, n_valid = intervals.get(metric, (np.nan, np.nan, 0))
            rows.append({
                "dataset": wildcards["dataset"], "task": task_name,
                "control": bool(task.get("control", False)), "backbone": wildcards["backbone"],
                "resolution": int(wildcards["res"]), "probe": wildcards["probe"], "seed": seed,
                "metric": metric, "value": value, "ci_low": low, "ci_high": high,
                "n_boot": n_valid, "n_evaluated": len(y_true), "n_total": n_total,
                "provenance_id": prov_id,
            })
    table = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    with atomic_path(metrics) as tmp:
        table.to_csv(tmp, index=False, float_format=FLOAT_FORMAT)
    record.write(provenance, outputs={"metrics": metrics})


def aggregate_stage(metric_files: list[str], metrics_out: str, provenance_dir: str) -> None:
    """One long table, sorted, fixed float format: same inputs give byte-identical bytes."""
    tables, records = [], {}
    for path in metric_files:
        table = pd.read_csv(path)
        tables.append(table)
        record = load_record(Path(path).with_name("provenance.json"))
        records[record["id"]] = {"id": record["id"], "metrics_file": path,
                                 "chain": chain(record)}
    table = pd.concat(tables, ignore_index=True)
    table = table.sort_values(["dataset", "task", "backbone", "resolution", "probe", "seed", "metric"],
                              kind="stable")
    with atomic_path(metrics_out) as tmp:
        table.to_csv(tmp, index=False, float_format=FLOAT_FORMAT)
    out = Path(provenance_dir)
    out.mkdir(parents=True, exist_ok=True)
    for prov_id, record in records.items():
        write_json(out / f"{prov_id}.json", record)
