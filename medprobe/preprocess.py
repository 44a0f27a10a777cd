"""Preprocess stage for 2-D datasets: adapter items + images -> item table and one array per split.

Pixel arrays are uint8 (N, channels, size, size), written with numpy's .npy format so the extractor can
memory-map them. Images are windowed to [0, 1] first (see medprobe.io.dicom), then made square by
the recorded resize policy, then quantised to 8 bits as display pipelines and PNG archives do.
"""

from __future__ import annotations

import importlib
import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from medprobe.atomic import atomic_path, write_json
from medprobe.download import read_manifest
from medprobe.hashing import sha256_json
from medprobe.datasets.adapters import label_column
from medprobe.datasets.registry import active_tasks
from medprobe.io.images import ImageReadError
from medprobe.splits import SPLITS, apply_split_policy

log = logging.getLogger(__name__)
RESIZE_POLICIES = ("resize", "pad", "crop")
META_KEYS = ("rows", "cols", "mode", "photometric", "bits_stored", "voi_source", "pixel_spacing", "shape", "spacing",
             "grid_shape", "original_axcodes", "n_nonfinite", "base_mpp", "mpp_source", "level", "n_tiles")


def to_square(image: np.ndarray, size: int, policy: str,
              resample: Image.Resampling = Image.Resampling.BILINEAR) -> np.ndarray:
    """A [0,1] image (H, W) or (H, W, C) -> (C, size, size) by the chosen policy (bilinear; nearest for label
    maps, which must never get in-between values)."""
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
            (size, size), resample=resample, reducing_gap=None), dtype=np.float32)
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


def source_digest(manifest: dict[str, str], source_file: str) -> str | None:
    """A file's sha256 from the manifest; for a folder (a DICOM series) one hash over its files; None if absent."""
    if source_file in manifest:
        return manifest[source_file]
    prefix = source_file.rstrip("/") + "/"
    members = {path: digest for path, digest in manifest.items() if path.startswith(prefix)}
    return sha256_json(members) if members else None


def _check_columns(items: pd.DataFrame, tasks: dict, source: str) -> None:
    labels = [label_column(lab) for task in tasks.values() if task["type"] != "segmentation"
              for lab in task["labels"]]
    if any(task["type"] == "segmentation" for task in tasks.values()):
        labels.append("mask_file")
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
    validation = items.attrs.get("validation")  # a user table's checks: rows skipped and rows without a split
    tasks = active_tasks(entry, options)
    _check_columns(items, tasks, source)
    stratify = next((task["labels"] for task in tasks.values()
                     if task["type"] != "segmentation" and not task.get("control")), None)
    items = apply_split_policy(items, entry["split"], root, seed=options.get("split_seed", 0), source=source,
                               stratify_labels=stratify)
    items["source_sha256"] = [source_digest(manifest, path) for path in items["source_file"]]
    skipped = items["skip_reason"] != "" if "skip_reason" in items.columns else pd.Series(False, index=items.index)
    not_in_manifest = sorted(items.loc[items["source_sha256"].isna() & ~skipped, "source_file"])
    if not_in_manifest:
        raise FileNotFoundError(
            f"{source}: {len(not_in_manifest)} file(s) in the label table are not in "
            f"{manifest_path}, e.g. {not_in_manifest[:5]}"
        )
    items = items.sort_values(["split", "item_id"], kind="stable").reset_index(drop=True)
    channels = entry.get("channels", 1)
    on_error = settings["on_error"]
    items["status"], items["row"] = "ok", -1
    if "skip_reason" in items.columns:  # rows validation found bad: never read, counted in their split's total
        bad = items["skip_reason"] != ""
        items.loc[bad, "status"] = "skipped: " + items.loc[bad, "skip_reason"]
        items = items.drop(columns="skip_reason")
    if entry["dimensionality"] == "3d":
        size, metas, volume_spec = _write_volume_slices(dataset, adapter, root, items, entry, settings, out_dir)
    elif entry["dimensionality"] == "wsi":
        from medprobe.wsi.preprocess import write_slide_tiles

        size, metas, volume_spec = write_slide_tiles(dataset, root, items, settings, out_dir)
    else:
        size, metas = _write_images(dataset, adapter, root, items, entry, settings, out_dir)
        volume_spec = {}
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
        "dtype": "tile records" if entry["dimensionality"] == "wsi" else "uint8",
        "layout": "(items, channels, size, size)",
        **volume_spec,
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
        **({"validation": validation} if validation else {}),
    }
    write_json(out_dir / "spec.json", spec)
    return spec


def _skip_or_raise(items: pd.DataFrame, index, error: ImageReadError, on_error: str) -> None:
    if on_error == "fail":
        raise error
    log.warning("skipping: %s", error)
    items.at[index, "status"] = f"skipped: {error}"


def _write_images(dataset: str, adapter, root: Path, items: pd.DataFrame, entry: dict, settings: dict,
                  out_dir: Path) -> tuple[int, dict[int, dict]]:
    """One (n_ok, C, S, S) uint8 array per split; returns the size used and each image's metadata."""
    source = f"dataset '{dataset}'"
    channels = entry.get("channels", 1)
    size = settings["size"]
    metas: dict[int, dict] = {}
    progress = tqdm(total=int((items["status"] == "ok").sum()), desc=f"preprocess {dataset}", unit="img")
    for split in SPLITS:
        members = items[(items["split"] == split) & (items["status"] == "ok")]
        path = out_dir / f"{split}.npy"
        with atomic_path(path) as tmp:
            array, n_ok = None, 0
            for index, decoded in adapter.iter_images(root, members, entry, settings):
                progress.update()
                if isinstance(decoded, ImageReadError):
                    _skip_or_raise(items, index, decoded, settings["on_error"])
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
            if array is None and len(members):
                raise ValueError(f"{source}: no readable image in split '{split}'")
            if array is None:  # an empty split (a test-only transfer set): an empty array, not a missing file
                side = 0 if size == "native" else size
                array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(0, channels, side, side))
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
    return size, metas


@contextmanager
def _scratch(path: Path):
    """A temporary binary file that is removed however the block ends."""
    try:
        with open(path, "wb") as handle:
            yield handle
    finally:
        path.unlink(missing_ok=True)


def _write_volume_slices(dataset: str, adapter, root: Path, items: pd.DataFrame, entry: dict, settings: dict,
                         out_dir: Path) -> tuple[int, dict[int, dict], dict]:
    """Every volume -> windowed slices along the chosen axis, stacked per split as (n_slices, 1, S, S) uint8.

    Slices are streamed to a raw file first (a split's slice count is known only at its end), then copied
    into the .npy, so memory holds one volume at a time. Each item records its rows [slice_start, slice_stop)
    and, as `row`, its position among the split's volumes.
    """
    from medprobe.io.volumes import resample
    from medprobe.io.windowing import ct_window, mr_percentile_normalise
    from medprobe.slices import AXES, image_slices

    size, axis = settings["size"], settings["slice_axis"]
    items["slice_start"], items["slice_stop"] = -1, -1
    metas: dict[int, dict] = {}
    intensity: dict = {}
    progress = tqdm(total=int((items["status"] == "ok").sum()), desc=f"preprocess {dataset}", unit="volume")
    for split in SPLITS:
        members = items[(items["split"] == split) & (items["status"] == "ok")]
        raw_path = out_dir / f".{split}.slices"
        n_slices = n_volumes = 0
        with atomic_path(out_dir / f"{split}.npy") as tmp, _scratch(raw_path) as raw:
            for index, loaded in adapter.iter_volumes(root, members, entry, settings):
                progress.update()
                if isinstance(loaded, ImageReadError):
                    _skip_or_raise(items, index, loaded, settings["on_error"])
                    continue
                volume = loaded
                if settings.get("spacing"):
                    volume, _ = resample(volume, settings["spacing"])
                if settings["size"] == "native":  # the slices' own size, as for 2-D images
                    rows, cols = (n for i, n in enumerate(volume.data.shape) if i != AXES[axis])
                    if rows != cols or size not in ("native", rows):
                        raise ValueError(f"dataset '{dataset}': {items.at[index, 'source_file']} has {rows}x{cols} "
                                         f"{axis} slices; preprocess size 'native' needs one square slice size")
                    size = rows
                if entry.get("intensity") == "normalised":  # the source already put voxels on [0, 1] (MedMNIST 3-D)
                    values, intensity = volume.data, {"method": "none", "reason": "source intensities normalised"}
                elif entry["modality"] == "ct":
                    values, intensity = ct_window(volume.data, settings["ct_window"])
                else:
                    values, intensity = mr_percentile_normalise(volume.data, tuple(settings["percentiles"]))
                slices = quantise(image_slices(values, axis, size, settings["resize_policy"]))
                raw.write(slices.tobytes())
                items.at[index, "slice_start"], items.at[index, "slice_stop"] = n_slices, n_slices + len(slices)
                items.at[index, "row"] = n_volumes
                n_volumes += 1
                original = volume.meta.get("resample", {})
                metas[index] = {"shape": "x".join(map(str, original.get("from_shape", volume.data.shape))),
                                "spacing": "x".join(f"{v:g}" for v in original.get("from_spacing", volume.spacing)),
                                "grid_shape": "x".join(map(str, volume.data.shape)),
                                "original_axcodes": "".join(volume.meta["original_axcodes"]),
                                "n_nonfinite": volume.meta["n_nonfinite"]}
                n_slices += len(slices)
            raw.flush()
            if n_slices == 0 and len(members):
                raise ValueError(f"dataset '{dataset}': no readable volume in split '{split}'")
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n_slices, 1, size, size))
            if n_slices:
                array[:, 0] = np.memmap(raw_path, dtype=np.uint8, mode="r", shape=(n_slices, size, size))
            array.flush()
            del array
    progress.close()
    resampling = ({"spacing_mm": [float(v) for v in settings["spacing"]], "images": "linear", "labels": "nearest",
                   "grid": "first voxel centre kept, extent rounded to whole voxels; predictions are mapped back to "
                           "each label map's own grid (nearest) before scoring and writing"}
                  if settings.get("spacing") else None)
    return size, metas, {"slice_axis": axis, "resample": resampling,
                         "intensity": {k: v for k, v in intensity.items() if k != "range"},
                         "layout": "(slices, 1, size, size); item rows [slice_start, slice_stop)"}


def _native_size(pixels: np.ndarray, source_file: str, source: str) -> int:
    rows, cols = pixels.shape[:2]
    if rows != cols:
        raise ValueError(f"{source}: {source_file} is {rows}x{cols}; preprocess size 'native' needs square images")
    return rows
