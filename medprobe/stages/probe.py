"""Probe stage: cached features -> per-item test predictions for every task of the dataset."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from medprobe.atomic import atomic_path
from medprobe.evaluate.metrics import class_indices, label_indicator
from medprobe.provenance import StageRecord
from medprobe.splits import SPLITS

log = logging.getLogger("medprobe")


def task_targets(index: pd.DataFrame, task: dict) -> np.ndarray:
    """0/1 matrix (n, L), -1 where a label is missing, for binary/multilabel tasks; class indices (n,) for multiclass.

    Checked here for every split, since the probes never see the test targets.
    """
    matrix = index[[f"label_{label}" for label in task["labels"]]].to_numpy(dtype=np.int64)
    if task["type"] == "multiclass":
        return class_indices(matrix)
    label_indicator(matrix, matrix.shape[1], task["type"])
    return matrix


def select_tokens(array: np.ndarray, tokens: list[str], which: str) -> np.ndarray:
    """(n, d) rows of the chosen tokens, concatenated, in the stored dtype.

    'all' is every token; 'cls_last_n' the CLS tokens of the last n blocks; else one token. Adjacent tokens
    are sliced, so a memory-mapped split stays a view that is read only where it is used (a slide set's
    tiles can be far larger than memory).
    """
    if which == "all":
        chosen = list(range(len(tokens)))
    elif which == "cls_last_n":
        chosen = [i for i, name in enumerate(tokens) if name == "cls" or name.startswith("cls_block-")]
        if not chosen:
            raise ValueError(f"probe features 'cls_last_n' need CLS tokens; this backbone wrote {tokens}")
    elif which in tokens:
        chosen = [tokens.index(which)]
    else:
        raise ValueError(f"probe features '{which}' not available; this backbone wrote {tokens}")
    adjacent = chosen == list(range(chosen[0], chosen[-1] + 1))
    array = array[:, chosen[0] : chosen[-1] + 1] if adjacent else array[:, chosen]
    return array.reshape(len(array), -1)


def classification_tasks(tasks: dict) -> dict:
    """Tasks scored from one feature vector per item; segmentation tasks go to the segmentation heads."""
    return {name: task for name, task in tasks.items() if task["type"] != "segmentation"}


# Items made of instances (a volume's slices, a slide's tiles) give their rows [start, stop) in the features.
INSTANCE_RANGES = (("slice_start", "slice_stop"), ("tile_start", "tile_stop"))


def instance_ranges(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """Each item's (start, stop) instance rows, or None for items that are one image each."""
    for start, stop in INSTANCE_RANGES:
        if start in part.columns:
            return part[start].to_numpy(), part[stop].to_numpy()
    return None


def mean_over_instances(features: np.ndarray, part: pd.DataFrame) -> np.ndarray:
    """(n_instances, d) -> (n_items, d): each volume's slices or slide's tiles averaged, as both studies do."""
    return np.stack([features[start:stop].mean(axis=0, dtype=np.float64)
                     for start, stop in zip(*instance_ranges(part))]).astype(np.float32)


def vector_inputs(tokens: np.ndarray, part: pd.DataFrame) -> np.ndarray:
    """One float32 vector per item, as the vector probes read it: a volume's slices or a slide's tiles
    averaged (the selected tokens of a memory map, read item by item), else the item's own features."""
    if instance_ranges(part) is not None:
        return mean_over_instances(tokens, part)
    return tokens.astype(np.float32)


def transfer_check(spec: dict, train_spec: dict, test_dir: Path, train_dir: Path) -> None:
    """Training on one dataset and testing on another needs the same tasks and the same feature tokens."""
    differ = [key for key in ("tasks", "tokens") if spec[key] != train_spec[key]]
    if differ:
        raise ValueError(f"transfer from {train_dir} to {test_dir}: the two differ in {differ} "
                         f"({[train_spec[k] for k in differ]} vs {[spec[k] for k in differ]}); a probe trained on one "
                         "cannot score the other")


def probe_stage(probe: str, params: dict, seed: int, feature_dir: str, upstream: str,
                predictions: str, provenance: str, threads: int = 1, rule: str | None = None,
                log_path: str | None = None, attention_path: str | None = None,
                train_feature_dir: str | None = None, train_upstream: str | None = None) -> None:
    """attention_path: where a bag probe writes each test instance's attention weight, per task.
    train_feature_dir: a transfer test set's probe trains and selects on this dataset's train and val features
    (e.g. CAMELYON16 for CAMELYON17) and scores the test split of feature_dir."""
    from threadpoolctl import threadpool_limits

    from medprobe.probes.registry import get_probe

    entry = get_probe(probe)
    # A few-shot probe trains on a draw from train and never reads val: its features are not even loaded.
    used = ("train", "test") if entry.get("few_shot") else SPLITS
    if entry.get("torch"):  # kNN and logreg never import it
        import torch

        torch.set_num_threads(max(1, threads))
    feature_dir = Path(feature_dir)
    train_dir = Path(train_feature_dir) if train_feature_dir else feature_dir
    split_dirs = {"train": train_dir, "val": train_dir, "test": feature_dir}
    spec = json.loads((feature_dir / "spec.json").read_text())
    if train_feature_dir:
        transfer_check(spec, json.loads((train_dir / "spec.json").read_text()), feature_dir, train_dir)
    params = {"features": "all", **params}
    record = StageRecord(
        "probe", __name__, {"probe": probe, "params": params, "seed": seed,
                            **({"trained_on": str(train_dir)} if train_feature_dir else {})},
        inputs={**{s: split_dirs[s] / f"{s}.npy" for s in used}, "index": feature_dir / "index.parquet",
                **({"train_index": train_dir / "index.parquet"} if train_feature_dir else {})},
        upstream={"extract_features": upstream, **({"extract_features_train": train_upstream}
                                                   if train_upstream else {})},
        rule=rule, log=log_path,
    )
    indexes = {d: pd.read_parquet(d / "index.parquet") for d in {train_dir, feature_dir}}
    parts = {s: indexes[split_dirs[s]].query("split == @s").sort_values("row") for s in SPLITS}
    empty = [s for s in SPLITS if parts[s].empty]
    if empty:
        raise ValueError(f"{probe} on {feature_dir}: no {empty} items; a test-only set (e.g. camelyon17 with "
                         "role: transfer) is probed with `transfer_from: <a dataset with train and val>` in the config")
    # Memory-mapped: a slide set's tiles are read bag by bag (MIL) or slide by slide (the mean), never whole.
    tokens = {s: select_tokens(np.load(split_dirs[s] / f"{s}.npy", mmap_mode="r"), spec["tokens"],
                               params["features"]) for s in used}
    if entry["kind"] == "bags":  # a volume's slices, a slide's tiles as one bag: (features, offsets)
        x = {s: (tokens[s], np.r_[instance_ranges(parts[s])[0], instance_ranges(parts[s])[1][-1:]]) for s in used}
    else:
        x = {s: vector_inputs(tokens[s], parts[s]) for s in used}
    run = entry["run"]
    rows, info, attention_rows = [], {}, []
    for task_name, task in classification_tasks(spec["tasks"]).items():
        try:
            y = {s: task_targets(parts[s], task) for s in used}
            # Small fits are slower with many BLAS threads than with the job's share of cores.
            with threadpool_limits(limits=max(1, threads)):
                if entry.get("few_shot"):
                    scores, info[task_name] = run(
                        x["train"], y["train"], x["test"], params, task["type"], seed,
                        train_patients=parts["train"]["patient_id"].to_numpy(),
                        train_items=parts["train"]["item_id"].to_numpy(), n_columns=len(task["labels"]))
                else:
                    scores, info[task_name] = run(x["train"], y["train"], x["val"], y["val"], x["test"],
                                                  params, task["type"], seed)
            # MIL's per-slice attention is summarised here, not stored whole in provenance.
            attention = info[task_name].pop("attention", None)
            if attention is not None:
                info[task_name]["attention_max_mean"] = float(np.mean([a.max() for a in attention]))
                attention_rows.append(pd.DataFrame({
                    "task": task_name,
                    "item_id": np.repeat(parts["test"]["item_id"].to_numpy(), [len(a) for a in attention]),
                    "instance": np.concatenate([np.arange(len(a)) for a in attention]),
                    "weight": np.concatenate(attention).astype(np.float64),
                }))
        except ValueError as err:
            raise ValueError(f"{probe} on {feature_dir}, task '{task_name}' "
                             f"(label columns in order: {task['labels']}): {err}") from err
        truth = parts["test"][[f"label_{label}" for label in task["labels"]]].to_numpy()
        # A few-shot probe scores the test split once per shot count, in a "shots" column.
        for shots, shot_scores in (scores.items() if entry.get("few_shot") else [(None, scores)]):
            for j, label in enumerate(task["labels"]):
                rows.append(pd.DataFrame({
                    "item_id": parts["test"]["item_id"].to_numpy(),
                    "patient_id": parts["test"]["patient_id"].to_numpy(),
                    "task": task_name, "label": label,
                    **({"shots": shots} if shots is not None else {}),
                    "y_true": truth[:, j].astype(np.int8), "y_score": shot_scores[:, j].astype(np.float64),
                }))
        log.info("%s on task %s: %s", probe, task_name, {k: v for k, v in info[task_name].items()
                                                           if not isinstance(v, (list, dict))})
    with atomic_path(predictions) as tmp:
        pd.concat(rows, ignore_index=True).to_parquet(tmp, index=False)
    outputs = {"predictions": predictions}
    if attention_path:
        if not attention_rows:
            raise ValueError(f"{probe} returned no attention weights to write to {attention_path}")
        with atomic_path(attention_path) as tmp:
            pd.concat(attention_rows, ignore_index=True).to_parquet(tmp, index=False)
        outputs["attention"] = attention_path
    record.write(provenance, outputs=outputs, extra={"selection": info})
