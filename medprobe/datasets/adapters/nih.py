"""NIH ChestX-ray14 layout: a label CSV (image name, patient id, findings joined by "|") beside a
folder of images. Serves the real NIH-14 (PNG) and the generated demo_cxr (DICOM).

A task label named "No Finding" is 1 exactly when the image has no finding (NIH's 15-label variant).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd

from medprobe.datasets.adapters import label_column, per_file_images
from medprobe.io.dicom import read_dicom_image
from medprobe.io.images import read_raster_image

NO_FINDING = "No Finding"


def read_items(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    spec = entry["labels"]
    table_path = root / spec["file"]
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    extra = spec.get("extra_binary_columns", {})
    required = [spec["image_column"], spec["patient_column"], spec["findings_column"], *extra.values()]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"{table_path}: missing column(s) {missing}; found {list(table.columns)}")
    findings_labels = list(dict.fromkeys(lab for task in entry["tasks"].values() for lab in task["labels"]
                                         if lab not in extra))
    items = pd.DataFrame({
        "item_id": table[spec["image_column"]].map(lambda name: Path(name).stem),
        "patient_id": table[spec["patient_column"]],
        "source_file": [f"{spec['image_dir']}/{name}" for name in table[spec["image_column"]]],
        "split": "",
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
    for label, column in extra.items():
        values = table[column]
        bad = table.index[~values.isin(["0", "1"])].tolist()
        if bad:
            raise ValueError(f"{table_path}: column '{column}' must be 0/1; rows {bad[:5]} are not")
        items[label_column(label)] = values.astype("int8")
    return items


def iter_images(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    if entry["format"] == "dicom":
        read = partial(read_dicom_image, voi_fallback=settings["voi_fallback"],
                       percentiles=tuple(settings["percentiles"]))
    else:
        read = partial(read_raster_image, channels=entry.get("channels", 1))
    return per_file_images(root, items, read)
