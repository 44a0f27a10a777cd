"""Preprocess stage for 2-D datasets: label table + images -> item table and one array per split.

Pixel arrays are uint8 (N, size, size), written with numpy's .npy format so the extractor can
memory-map them. Images are windowed to [0, 1] first (see medprobe.io.dicom), then made square by
the recorded resize policy, then quantised to 8 bits as display pipelines and PNG archives do.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from medprobe.atomic import atomic_path, write_json
from medprobe.download import read_manifest
from medprobe.io.dicom import DicomReadError, read_dicom_image
from medprobe.splits import SPLITS, assign_patient_splits

log = logging.getLogger(__name__)
RESIZE_POLICIES = ("resize", "pad", "crop")
NO_FINDING = "No Finding"


def label_column(label: str) -> str:
    return f"label_{label}"


def read_nih_style_labels(raw_dir: Path, entry: dict) -> pd.DataFrame:
    """Image table with one 0/1 column per label, from an NIH ChestX-ray14-style CSV."""
    spec = entry["labels"]
    table_path = raw_dir / spec["file"]
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    required = [spec["image_column"], spec["patient_column"], spec["findings_column"],
                *spec.get("extra_binary_columns", {}).values()]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"{table_path}: missing column(s) {missing}; found {list(table.columns)}")
    findings_labels = [lab for task in entry["tasks"].values() for lab in task["labels"]
                       if lab not in spec.get("extra_binary_columns", {})]
    items = pd.DataFrame({
        "item_id": table[spec["image_column"]].map(lambda name: Path(name).stem),
        "patient_id": table[spec["patient_column"]],
        "source_file": [f"{spec['image_dir']}/{name}" for name in table[spec["image_column"]]],
    })
    dupes = items["item_id"][items["item_id"].duplicated()].tolist()
    if dupes:
        raise ValueError(f"{table_path}: duplicate image ids, e.g. {dupes[:5]}")
    findings = table[spec["findings_column"]].str.split("|")
    unknown = sorted({f for fs in findings for f in fs} - set(findings_labels) - {NO_FINDING, ""})
    if unknown:
        raise ValueError(f"{table_path}: unknown finding label(s) {unknown}; declared {findings_labels}")
    for label in findings_labels:
        items[label_column(label)] = findings.map(lambda fs, lab=label: int(lab in fs)).astype("int8")
    for label, column in spec.get("extra_binary_columns", {}).items():
        values = table[column]
        bad = table.index[~values.isin(["0", "1"])].tolist()
        if bad:
            raise ValueError(f"{table_path}: column '{column}' must be 0/1; rows {bad[:5]} are not")
        items[label_column(label)] = values.astype("int8")
    return items


def read_split_table(raw_dir: Path, entry: dict) -> pd.DataFrame:
    spec = entry["split"]
    table = pd.read_csv(raw_dir / spec["file"], dtype=str, keep_default_na=False)
    return table.rename(columns={spec["patient_column"]: "patient_id", spec["split_column"]: "split"})


def to_square(image: np.ndarray, size: int, policy: str) -> np.ndarray:
    """Make a [0,1] float image square at `size` by the chosen policy (antialiased bilinear)."""
    rows, cols = image.shape
    if policy == "crop":
        side = min(rows, cols)
        top, left = (rows - side) // 2, (cols - side) // 2
        image = image[top:top + side, left:left + side]
    elif policy == "pad":
        side = max(rows, cols)
        canvas = np.zeros((side, side), dtype=np.float32)
        top, left = (side - rows) // 2, (side - cols) // 2
        canvas[top:top + rows, left:left + cols] = image
        image = canvas
    elif policy != "resize":
        raise ValueError(f"unknown resize policy '{policy}'; choose one of {RESIZE_POLICIES}")
    resized = Image.fromarray(image.astype(np.float32), mode="F").resize(
        (size, size), resample=Image.Resampling.BILINEAR, reducing_gap=None
    )
    return np.asarray(resized, dtype=np.float32)


def quantise(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def preprocess_2d(dataset: str, entry: dict, raw_dir: str | Path, out_dir: str | Path,
                  size: int, resize_policy: str, voi_fallback: str,
                  percentiles: tuple[float, float], on_error: str) -> dict:
    """Returns the preprocessing spec (also written to out_dir/spec.json)."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    manifest = read_manifest(raw_dir / "manifest.tsv")
    items = read_nih_style_labels(raw_dir, entry)
    items = assign_patient_splits(items, read_split_table(raw_dir, entry), f"dataset '{dataset}'")
    not_in_manifest = sorted(set(items["source_file"]) - set(manifest))
    if not_in_manifest:
        raise FileNotFoundError(
            f"dataset '{dataset}': {len(not_in_manifest)} file(s) in the label table are not in "
            f"{raw_dir / 'manifest.tsv'}, e.g. {not_in_manifest[:5]}"
        )
    items["source_sha256"] = items["source_file"].map(manifest)
    items = items.sort_values(["split", "item_id"], kind="stable").reset_index(drop=True)

    items["status"], items["row"] = "ok", -1
    metas: dict[int, dict] = {}
    progress = tqdm(total=len(items), desc=f"preprocess {dataset}", unit="img")
    for split in SPLITS:
        members = items.index[items["split"] == split]
        path = out_dir / f"{split}.npy"
        with atomic_path(path) as tmp:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                              shape=(len(members), size, size))
            n_ok = 0
            for index in members:
                source_file = items.at[index, "source_file"]
                progress.update()
                try:
                    decoded = read_dicom_image(raw_dir / source_file, voi_fallback=voi_fallback,
                                               percentiles=tuple(percentiles))
                except DicomReadError as err:
                    if on_error == "fail":
                        raise
                    log.warning("skipping: %s", err)
                    items.at[index, "status"] = f"skipped: {err}"
                    continue
                array[n_ok] = quantise(to_square(decoded.pixels, size, resize_policy))
                items.at[index, "row"] = n_ok
                metas[index] = decoded.meta
                n_ok += 1
            array.flush()
            if n_ok < len(members):  # skipped items: keep only the rows written
                compact = np.lib.format.open_memmap(tmp.with_suffix(".compact"), mode="w+",
                                                    dtype=np.uint8, shape=(n_ok, size, size))
                compact[:] = array[:n_ok]
                compact.flush()
                del compact
                tmp.with_suffix(".compact").replace(tmp)
            del array
    progress.close()
    for key in ("rows", "cols", "photometric", "bits_stored", "voi_source"):
        items[key] = [metas.get(i, {}).get(key) for i in items.index]
    items["pixel_spacing"] = [
        "x".join(f"{v:g}" for v in metas[i]["pixel_spacing"])
        if metas.get(i, {}).get("pixel_spacing") else "" for i in items.index
    ]

    with atomic_path(out_dir / "items.parquet") as tmp:
        items.to_parquet(tmp, index=False)
    with atomic_path(out_dir / "split.tsv") as tmp:
        items[["item_id", "patient_id", "split"]].to_csv(tmp, sep="\t", index=False)
    spec = {
        "dataset": dataset,
        "dimensionality": entry["dimensionality"],
        "size": size,
        "dtype": "uint8",
        "value_range": [0, 255],
        "resize_policy": resize_policy,
        "voi_fallback": voi_fallback,
        "percentiles": list(percentiles),
        "on_error": on_error,
        "tasks": entry["tasks"],
        "counts": {
            split: {"total": int((items["split"] == split).sum()),
                    "ok": int(((items["split"] == split) & (items["status"] == "ok")).sum())}
            for split in SPLITS
        },
    }
    write_json(out_dir / "spec.json", spec)
    return spec
