"""Volume datasets listed in a CSV: one row per volume with its image (a NIfTI file or a folder
holding one DICOM series), optionally its label map (NIfTI), the patient and binary labels.

Serves the generated demo_ct; real datasets in the same shape (a table plus volumes) are entries.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medprobe.datasets.adapters import read_table_items
from medprobe.io.dicom_series import read_dicom_series
from medprobe.io.images import ImageReadError
from medprobe.io.volumes import read_nifti, read_nifti_labels


read_items = read_table_items


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
