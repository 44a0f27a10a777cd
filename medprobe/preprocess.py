"""Preprocess stage for 2-D datasets: adapter items + images -> item table and one array per split.

Pixel arrays are uint8 (N, channels, size, size), written with numpy's .npy format so the extractor can
memory-map them. Images are windowed to [0, 1] first (see medprobe.io.dicom), then made square by
the recorded resize policy, then quantised to 8 bits as display pipelines and PNG archives do.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from medprobe.atomic import atomic_path, write_json
from medprobe.download import read_manifest
from medprobe.datasets.adapters import label_column
from medprobe.datasets.registry import active_tasks
from medprobe.io.images import ImageReadError
from medprobe.splits import SPLITS, apply_split_policy

log = logging.getLogger(__name__)
RESIZE_POLICIES = ("resize", "pad", "crop")
META_KEYS = ("rows", "cols", "mode", "photometric", "bits_stored", "voi_source", "pixel_spacing")


def to_square(image: np.ndarray, size: int, policy: str) -> np.ndarray:
    """A [0,1] image (H, W) or (H, W, C) -> (C, size, size) by the chosen policy (antialiased bilinear)."""
    planes = image[..., None] if image.ndim == 2 else image
    rows, cols = planes.shape[:2]
    if policy == "crop":
        side = min(rows, cols)
        top, left = (rows - side) // 2, (cols - side) // 2
        planes = planes[top:top + side, left:left + side]
    elif policy == "pad":
        side = max(rows, cols)
        canvas = np.zeros((side, side, planes.shape[2]), dtype=np.float32)
        top, left = (side - rows) // 2, (side - cols) // 2
        canvas[top:top + rows, left:left + cols] = planes
        planes = canvas
    elif policy != "resize":
        raise ValueError(f"unknown resize policy '{policy}'; choose one of {RESIZE_POLICIES}")
    if planes.shape[:2] == (size, size):
        return np.moveaxis(planes.astype(np.float32), 2, 0)
    return np.stack([
        np.asarray(Image.fromarray(plane.astype(np.float32), mode="F").resize(
            (size, size), resample=Image.Resampling.BILINEAR, reducing_gap=None), dtype=np.float32)
        for plane in np.moveaxis(planes, 2, 0)
    ])


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Grayscale datasets keep one plane (RGB files are converted by luma); RGB ones keep three."""
    if channels == 3:
        return image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    if image.ndim == 3:
        return image[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return image


def quantise(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _check_columns(items: pd.DataFrame, tasks: dict, source: str) -> None:
    labels = [label_column(lab) for task in tasks.values() for lab in task["labels"]]
    missing = [c for c in ("item_id", "patient_id", "source_file", "split", *labels) if c not in items.columns]
    if missing:
        raise ValueError(f"{source}: the adapter returned no column(s) {missing}")
    dupes = items["item_id"][items["item_id"].duplicated()].tolist()
    if dupes:
        raise ValueError(f"{source}: duplicate item ids, e.g. {dupes[:5]}")


def _meta_columns(items: pd.DataFrame, metas: dict[int, dict]) -> None:
    present = [key for key in META_KEYS if any(key in meta for meta in metas.values())]
    for key in present:
        values = [metas.get(i, {}).get(key) for i in items.index]
        if key == "pixel_spacing":
            values = ["x".join(f"{v:g}" for v in value) if value else "" for value in values]
        items[key] = values


def preprocess_dataset(dataset: str, entry: dict, root: str | Path, manifest_path: str | Path,
                       out_dir: str | Path, settings: dict, options: dict) -> dict:
    """Returns the preprocessing spec (also written to out_dir/spec.json)."""
    root, out_dir = Path(root), Path(out_dir)
    source = f"dataset '{dataset}'"
    adapter = importlib.import_module(entry["adapter"])
    manifest = read_manifest(manifest_path)
    items = adapter.read_items(root, entry, options)
    tasks = active_tasks(entry, options)
    _check_columns(items, tasks, source)
    first_task = next(iter(tasks.values()))
    items = apply_split_policy(items, entry["split"], root, seed=options.get("split_seed", 0), source=source,
                               stratify_labels=None if first_task.get("control") else first_task["labels"])
    not_in_manifest = sorted(set(items["source_file"]) - set(manifest))
    if not_in_manifest:
        raise FileNotFoundError(
            f"{source}: {len(not_in_manifest)} file(s) in the label table are not in "
            f"{manifest_path}, e.g. {not_in_manifest[:5]}"
        )
    items["source_sha256"] = items["source_file"].map(manifest)
    items = items.sort_values(["split", "item_id"], kind="stable").reset_index(drop=True)
    channels = entry.get("channels", 1)
    size = settings["size"]
    on_error = settings["on_error"]

    items["status"], items["row"] = "ok", -1
    metas: dict[int, dict] = {}
    progress = tqdm(total=len(items), desc=f"preprocess {dataset}", unit="img")
    for split in SPLITS:
        members = items[items["split"] == split]
        path = out_dir / f"{split}.npy"
        with atomic_path(path) as tmp:
            array, n_ok = None, 0
            for index, decoded in adapter.iter_images(root, members, entry, settings):
                progress.update()
                if isinstance(decoded, ImageReadError):
                    if on_error == "fail":
                        raise decoded
                    log.warning("skipping: %s", decoded)
                    items.at[index, "status"] = f"skipped: {decoded}"
                    continue
                pixels = to_channels(decoded.pixels, channels)
                if size == "native":
                    size = _native_size(pixels, items.at[index, "source_file"], source)
                if array is None:
                    array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                                      shape=(len(members), channels, size, size))
                if settings["size"] == "native" and pixels.shape[:2] != (size, size):
                    raise ValueError(f"{source}: {items.at[index, 'source_file']} is {pixels.shape[:2]}, "
                                     f"other images are {size}x{size}; 'native' size needs one square size")
                array[n_ok] = quantise(to_square(pixels, size, settings["resize_policy"]))
                items.at[index, "row"] = n_ok
                metas[index] = decoded.meta
                n_ok += 1
            if array is None:
                raise ValueError(f"{source}: no readable image in split '{split}'")
            array.flush()
            if n_ok < len(members):  # skipped items: keep only the rows written
                compact = np.lib.format.open_memmap(tmp.with_suffix(".compact"), mode="w+", dtype=np.uint8,
                                                    shape=(n_ok, channels, size, size))
                compact[:] = array[:n_ok]
                compact.flush()
                del compact
                tmp.with_suffix(".compact").replace(tmp)
            del array
    progress.close()
    _meta_columns(items, metas)

    with atomic_path(out_dir / "items.parquet") as tmp:
        items.to_parquet(tmp, index=False)
    with atomic_path(out_dir / "split.tsv") as tmp:
        items[["item_id", "patient_id", "split"]].to_csv(tmp, sep="\t", index=False)
    spec = {
        "dataset": dataset,
        "dimensionality": entry["dimensionality"],
        "size": size,
        "native_size": settings["size"] == "native",
        "channels": channels,
        "dtype": "uint8",
        "layout": "(items, channels, size, size)",
        "value_range": [0, 255],
        "resize_policy": settings["resize_policy"],
        "voi_fallback": settings["voi_fallback"],
        "percentiles": list(settings["percentiles"]),
        "on_error": on_error,
        "split_policy": entry["split"],
        "split_seed": options.get("split_seed", 0),
        "tasks": tasks,
        "counts": {
            split: {"total": int((items["split"] == split).sum()),
                    "ok": int(((items["split"] == split) & (items["status"] == "ok")).sum())}
            for split in SPLITS
        },
    }
    write_json(out_dir / "spec.json", spec)
    return spec


def _native_size(pixels: np.ndarray, source_file: str, source: str) -> int:
    rows, cols = pixels.shape[:2]
    if rows != cols:
        raise ValueError(f"{source}: {source_file} is {rows}x{cols}; preprocess size 'native' needs square images")
    return rows
