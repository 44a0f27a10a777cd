"""A user's own table of files (medprobe.datasets.user_table): 2-D images (DICOM, PNG, JPEG, TIFF), volumes (NIfTI
or a folder holding one DICOM series), their masks, or whole slides.

check_layout runs at the download stage, so every bad row is named before any heavy work: under the option
`on_invalid: fail` (default) any problem stops the run, listing them all; under `skip` the bad rows are kept in the
item table with a `skip_reason`, never read, and counted in their split's total.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from medprobe.datasets.adapters import image_table, volume_table
from medprobe.datasets.user_table import declaration, items_from_table, validate

log = logging.getLogger(__name__)

iter_images = image_table.iter_images
iter_volumes = volume_table.iter_volumes


def check_layout(root: Path, entry: dict, options: dict) -> dict:
    """Validate every row, reading every file with the readers preprocess uses; returns the summary for provenance."""
    report, _, _ = validate(options, read_files=True)
    n_skipped = report.raise_if_problems(options["on_invalid"])
    log.info("%s", report.format())
    return {**report.summary, "policy": options["on_invalid"], "n_skipped": n_skipped,
            "problems": [str(p) for p in report.problems]}


def read_items(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    """Every row with a place in the split; under `skip` the files are read again to find this run's bad rows
    (check_layout read them under `fail`, and the manifest guarantees they have not changed since)."""
    report, table, columns = validate(options, read_files=options["on_invalid"] == "skip")
    report.raise_if_problems(options["on_invalid"])
    return items_from_table(report, table, columns, declaration(options)[1])


def iter_masks(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    """2-D label maps (PNG) or label volumes (NIfTI), as the dataset's dimensionality says."""
    module = volume_table if entry["dimensionality"] == "3d" else image_table
    return module.iter_masks(root, items, entry, settings)
