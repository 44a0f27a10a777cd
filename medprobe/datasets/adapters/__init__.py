"""Dataset adapters: one module per raw-data layout (not per dataset), named by the registry entry's
`adapter` key. An adapter turns a dataset's files into the item table and images that
`medprobe.preprocess` standardises, so a new dataset in a known layout is one registry entry.

An adapter module provides:

read_items(root, entry, options) -> pandas.DataFrame
    One row per image, with columns
      item_id      unique, stable across runs (a file stem, or `<split>_<index>` in array files)
      patient_id   the unit of splitting and of the bootstrap (the item id when unknown)
      source_file  path relative to `root`, exactly as listed in the download manifest
      split        'train' | 'val' | 'test', or 'trainval' (val is carved out by patient), or ''
                   (the entry's split policy assigns it); see `medprobe.splits.apply_split_policy`
      label_<name> int8 per label of every task: 0/1 for binary and multi-label tasks (-1 = label
                   missing for this item), one-hot over the classes for multiclass tasks
    and optionally mask_file (relative path of a segmentation mask, kept for later stages) and
    any geometry columns (rows, cols, pixel_spacing).
iter_images(root, items, entry, settings) -> iterator of (index, Image | ImageReadError)
    Every row of `items`, in order. Unreadable images are yielded as errors, not raised, so the
    preprocess `on_error` policy decides between failing and a counted skip.
iter_volumes(root, items, entry, settings) -> iterator of (index, Volume | ImageReadError)
    Instead of iter_images, for 3-D entries: canonical RAS+ volumes (medprobe.io.volumes).
iter_masks(root, items, entry, settings) -> iterator of (index, uint8 label map | ImageReadError)
    For entries with a segmentation task: each row's label map (2-D, or a canonical 3-D volume on its
    image's grid), from the `mask_file` column.
check_layout(root, entry, options) -> None   (only adapters of local-folder sources)
    Raise LayoutError that says exactly which files and folder layout are expected under `root`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from medprobe.io.images import Image, ImageReadError


class LayoutError(FileNotFoundError):
    """A dataset folder that does not have the layout its adapter reads."""


def label_column(label: str) -> str:
    return f"label_{label}"


def per_file_images(root: Path, items: pd.DataFrame,
                    read: Callable[[Path], Image]) -> Iterator[tuple[int, Image | ImageReadError]]:
    """iter_images for layouts with one file per item."""
    for index, source_file in items["source_file"].items():
        try:
            yield index, read(root / source_file)
        except ImageReadError as err:
            yield index, err


def require_files(root: Path, relative: list[str], expected_layout: str) -> None:
    """LayoutError listing every missing path at once, followed by the full expected layout."""
    if not root.is_dir():
        raise LayoutError(f"dataset folder {root} does not exist. Expected layout:\n{expected_layout}")
    missing = [name for name in relative if not (root / name).exists()]
    if missing:
        raise LayoutError(f"{root}: missing {', '.join(missing)}. Expected layout:\n{expected_layout}")


def read_table_items(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    """read_items for layouts listed in one CSV: id, patient, image path, optional mask path and 0/1 labels.

    The entry's `labels` names the columns: file, id_column, patient_column, image_column, mask_column
    (optional) and binary_columns (label -> column).
    """
    spec = entry["labels"]
    table_path = root / spec["file"]
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    binary = spec.get("binary_columns", {})
    required = [spec["id_column"], spec["patient_column"], spec["image_column"], *binary.values()]
    if spec.get("mask_column"):
        required.append(spec["mask_column"])
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"{table_path}: missing column(s) {missing}; found {list(table.columns)}")
    items = pd.DataFrame({"item_id": table[spec["id_column"]], "patient_id": table[spec["patient_column"]],
                          "source_file": table[spec["image_column"]], "split": ""})
    if spec.get("mask_column"):
        items["mask_file"] = table[spec["mask_column"]]
    for label, column in binary.items():
        bad = table.index[~table[column].isin(["0", "1"])].tolist()
        if bad:
            raise ValueError(f"{table_path}: column '{column}' must be 0/1; rows {bad[:5]} are not")
        items[label_column(label)] = table[column].astype("int8")
    return items

