"""Segmentation masks aligned row for row with the preprocessed images.

Runs after preprocess: it reads the item table, so masks follow exactly the images that were kept, in
their order, through the same square geometry (nearest neighbour). 2-D: one (n, S, S) uint8 array per
split; volumes: label slices stacked like the image slices, [slice_start, slice_stop) per volume.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from medprobe.atomic import atomic_path
from medprobe.io.images import ImageReadError
from medprobe.preprocess import to_square
from medprobe.slices import label_slices
from medprobe.splits import SPLITS

log = logging.getLogger(__name__)


def segmentation_task(tasks: dict) -> tuple[str, dict]:
    found = [(name, task) for name, task in tasks.items() if task["type"] == "segmentation"]
    if len(found) != 1:
        raise ValueError(f"expected exactly one segmentation task, found {[name for name, _ in found]}")
    return found[0]


def labels_on_preprocessed_grid(labels: np.ndarray, row: pd.Series, spec: dict, source: Path) -> np.ndarray:
    """A canonical label map -> the grid its image was resampled to (nearest neighbour).

    The map lies on its image's canonical grid, so the image's recorded spacing fixes the resampling; the result
    must have the image's resampled shape, or image and mask no longer share voxels.
    """
    from medprobe.io.volumes import Volume, resample

    spacing = tuple(float(v) for v in row["spacing"].split("x"))
    resampled = resample(Volume(labels, np.diag([*spacing, 1.0]), spacing, {}), spec["resample"]["spacing_mm"],
                         labels=True)[0].data
    if "x".join(map(str, resampled.shape)) != row["grid_shape"]:
        raise ValueError(f"{source}: label map resampled to {resampled.shape}, its image to {row['grid_shape']}; "
                         f"the label map is not on its image's grid ({labels.shape} voxels, image {row['shape']})")
    return resampled


def write_masks(dataset: str, entry: dict, root: str | Path, items_path: str | Path, spec: dict,
                out_dir: str | Path) -> dict:
    """masks_<split>.npy for every split; returns per-split counts of labelled pixels per class."""
    root, out_dir = Path(root), Path(out_dir)
    adapter = importlib.import_module(entry["adapter"])
    task_name, task = segmentation_task(spec["tasks"])
    n_classes = len(task["labels"]) + 1
    items = pd.read_parquet(items_path)
    items = items[items["status"] == "ok"]
    size, policy = spec["size"], spec["resize_policy"]
    volumes = spec["dimensionality"] == "3d"
    counts = {}
    progress = tqdm(total=len(items), desc=f"masks {dataset}", unit="mask")
    for split in SPLITS:
        members = items[items["split"] == split].sort_values("row")
        n_rows = int(members["slice_stop"].max()) if volumes else len(members)
        with atomic_path(out_dir / f"masks_{split}.npy") as tmp:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n_rows, size, size))
            for index, mask in adapter.iter_masks(root, members, entry, {}):
                progress.update()
                row = members.loc[index]
                if isinstance(mask, ImageReadError):
                    raise mask  # images and masks must stay aligned: a bad mask is never skipped
                if mask.max(initial=0) >= n_classes:
                    raise ValueError(f"{root / row['mask_file']}: label {int(mask.max())} is outside task "
                                     f"'{task_name}' (classes 1..{n_classes - 1}: {task['labels']})")
                if volumes:
                    if spec.get("resample"):
                        mask = labels_on_preprocessed_grid(mask, row, spec, root / row["mask_file"])
                    sliced = label_slices(mask, spec["slice_axis"], size, policy)
                    expected = row["slice_stop"] - row["slice_start"]
                    if len(sliced) != expected:
                        raise ValueError(f"{root / row['mask_file']}: {len(sliced)} slices along "
                                         f"{spec['slice_axis']}, its image has {expected}")
                    array[row["slice_start"]:row["slice_stop"]] = sliced
                else:
                    square = to_square(mask.astype(np.float32), size, policy, Image.Resampling.NEAREST)
                    array[row["row"]] = square[0].astype(np.uint8)
            array.flush()
            counts[split] = np.bincount(array.reshape(-1), minlength=n_classes).tolist()
            del array
    progress.close()
    return {"task": task_name, "classes": ["background", *task["labels"]], "pixels_per_class": counts}
