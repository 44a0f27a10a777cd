"""RSNA Pneumonia Detection Challenge layout (Kaggle, stage 2): stage_2_train_labels.csv beside a folder of
<patientId>.dcm files.

The label table has one row per lung-opacity box (patientId, x, y, width, height, Target), and one row with blank
box and Target 0 for an image without one; an image is positive when any of its rows has Target 1. A patientId
names one image: the challenge removed the NIH patient identifiers, so the image is also the unit of splitting.
The stage 2 test images carry no labels and are not read.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd

from medprobe.datasets.adapters import label_column, per_file_images, require_files
from medprobe.io.dicom import read_dicom_image

COLUMNS = ("patientId", "x", "y", "width", "height", "Target")


def read_items(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    spec = entry["labels"]
    table_path = root / spec["file"]
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{table_path}: missing column(s) {missing}; found {list(table.columns)}")
    target = table["Target"].str.strip()
    bad = target.index[~target.isin(["0", "1"])]
    if len(bad):
        raise ValueError(f"{table_path}: column 'Target' must be 0 or 1; line(s) {[i + 2 for i in bad[:5]]} "
                         f"hold {sorted(set(target[bad]))[:5]}")
    blank_ids = table.index[table["patientId"].str.strip() == ""]
    if len(blank_ids):
        raise ValueError(f"{table_path}: blank patientId on line(s) {[i + 2 for i in blank_ids[:5]]}")
    per_image = target.astype("int8").groupby(table["patientId"], sort=False).max()
    return pd.DataFrame({
        "item_id": per_image.index,
        "patient_id": per_image.index,
        "source_file": [f"{spec['image_dir']}/{pid}.dcm" for pid in per_image.index],
        "split": "",
        label_column(spec["label"]): per_image.to_numpy(),
    })


def iter_images(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    read = partial(read_dicom_image, voi_fallback=settings["voi_fallback"], percentiles=tuple(settings["percentiles"]))
    return per_file_images(root, items, read)


def check_layout(root: Path, entry: dict, options: dict) -> None:
    spec = entry["labels"]
    require_files(root, [spec["file"], spec["image_dir"]], entry["source"]["layout"])
