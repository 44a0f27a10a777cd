"""Volume datasets listed in a CSV: one row per volume with its image (a NIfTI file or a folder
holding one DICOM series), optionally its label map (NIfTI), the patient and binary labels.

Serves the generated demo_ct; real datasets in the same shape (a table plus volumes) are entries.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medprobe.datasets.adapters import label_column
from medprobe.io.dicom_series import read_dicom_series
from medprobe.io.images import ImageReadError
from medprobe.io.volumes import read_nifti, read_nifti_labels


def read_items(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    spec = entry["labels"]
    table_path = root / spec["file"]
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    binary = spec.get("binary_columns", {})
    required = [spec["id_column"], spec["patient_column"], spec["image_column"], *binary.values()]
    if spec.get("label_map_column"):
        required.append(spec["label_map_column"])
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"{table_path}: missing column(s) {missing}; found {list(table.columns)}")
    items = pd.DataFrame({"item_id": table[spec["id_column"]], "patient_id": table[spec["patient_column"]],
                          "source_file": table[spec["image_column"]], "split": ""})
    if spec.get("label_map_column"):
        items["mask_file"] = table[spec["label_map_column"]]
    for label, column in binary.items():
        bad = table.index[~table[column].isin(["0", "1"])].tolist()
        if bad:
            raise ValueError(f"{table_path}: column '{column}' must be 0/1; rows {bad[:5]} are not")
        items[label_column(label)] = table[column].astype("int8")
    return items


def iter_volumes(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    """(index, Volume | ImageReadError) for every row, in order; a folder is read as one DICOM series."""
    for index, source_file in items["source_file"].items():
        path = root / source_file
        try:
            yield index, read_dicom_series(path) if path.is_dir() else read_nifti(path)
        except ImageReadError as err:
            yield index, err


def iter_masks(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    """(index, canonical uint8 label volume | ImageReadError) for every row, in order."""
    for index, mask_file in items["mask_file"].items():
        try:
            yield index, read_nifti_labels(root / mask_file).data
        except ImageReadError as err:
            yield index, err
