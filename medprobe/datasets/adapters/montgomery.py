"""Montgomery County chest X-ray set (NLM): <image_dir>/MCUCXR_<nnnn>_<d>.png, where the digit d is the TB
reading (1 = abnormal), with one manual lung mask per lung under the same file name in <left_mask_dir> and
<right_mask_dir> (binary PNGs the size of the radiograph). One radiograph per patient, so the patient is the image.
The two masks become one label map, 1 = left lung and 2 = right lung, the order of the entry's "lungs" labels.

The radiographs hold 12-bit grey levels (NLM readme). Read by their 16-bit container depth they would fill only the
bottom sixteenth of [0, 1], so 16-bit files are windowed like a DICOM image without VOI tags (the preprocess
settings voi_fallback and percentiles); 8-bit files already hold display values and are read as they are.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image as PILImage, UnidentifiedImageError

from medprobe.datasets.adapters import label_column, per_file_images, require_files
from medprobe.datasets.adapters.image_table import read_mask
from medprobe.io.images import Image, ImageReadError, read_raster_image, window

NAME = re.compile(r"MCUCXR_\d{4}_([01])\.png")
LEFT_LUNG, RIGHT_LUNG = 1, 2


def expected_layout(spec: dict) -> str:
    return (f"{spec['image_dir']}/MCUCXR_<nnnn>_<0|1>.png   (last digit: TB reading, 1 = abnormal)\n"
            f"{spec['left_mask_dir']}/<the same file name>\n"
            f"{spec['right_mask_dir']}/<the same file name>")


def read_items(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    spec = entry["labels"]
    folders = [spec["image_dir"], spec["left_mask_dir"], spec["right_mask_dir"]]
    require_files(root, folders, expected_layout(spec))
    pngs = sorted(p.name for p in (root / spec["image_dir"]).iterdir() if p.suffix.lower() == ".png")
    unexpected = [name for name in pngs if not NAME.fullmatch(name)]
    if unexpected:
        raise ValueError(f"{root / spec['image_dir']}: file name(s) {unexpected[:5]} are not MCUCXR_<nnnn>_<0|1>.png")
    if not pngs:
        raise ValueError(f"{root / spec['image_dir']}: no radiographs. Expected layout:\n{expected_layout(spec)}")
    masks = {folder: [f"{folder}/{name}" for name in pngs] for folder in folders[1:]}
    missing = [path for paths in masks.values() for path in paths if not (root / path).is_file()]
    if missing:
        raise ValueError(f"{root}: {len(missing)} lung mask(s) missing, e.g. {missing[:5]}. "
                         f"Expected layout:\n{expected_layout(spec)}")
    stems = [Path(name).stem for name in pngs]
    return pd.DataFrame({
        "item_id": stems,
        "patient_id": stems,
        "source_file": [f"{spec['image_dir']}/{name}" for name in pngs],
        "split": "",
        label_column(spec["label"]): np.array([int(NAME.fullmatch(name).group(1)) for name in pngs], dtype="int8"),
        "mask_file": masks[spec["left_mask_dir"]],
        "mask_right_file": masks[spec["right_mask_dir"]],
    })


def iter_images(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    read = partial(read_radiograph, voi_fallback=settings["voi_fallback"], percentiles=tuple(settings["percentiles"]),
                   pixel_spacing=entry["labels"].get("pixel_spacing_mm"))
    return per_file_images(root, items, read)


def read_radiograph(path: Path, voi_fallback: str, percentiles: tuple[float, float],
                    pixel_spacing: list[float] | None = None) -> Image:
    """A grey PNG in [0, 1]: windowed when it has more than 8 bits, as stored otherwise."""
    try:
        with PILImage.open(path) as opened:
            mode, (cols, rows) = opened.mode, opened.size
            raw = np.asarray(opened, dtype=np.float64) if mode.startswith("I") else None
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(path, f"not a readable image ({type(exc).__name__}: {exc})") from exc
    if raw is None:
        image = read_raster_image(path, channels=1)
        pixels, meta = image.pixels, dict(image.meta)
    else:
        pixels = window(raw, voi_fallback, percentiles).astype(np.float32)
        meta = {"mode": mode, "rows": rows, "cols": cols, "voi_source": voi_fallback}
    if pixel_spacing:
        meta["pixel_spacing"] = list(pixel_spacing)
    return Image(pixels, meta)


def iter_masks(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    """(index, uint8 lung label map | ImageReadError) for every row, in order."""
    for index, row in items.iterrows():
        try:
            yield index, lung_labels(root / row["source_file"], root / row["mask_file"], root / row["mask_right_file"])
        except ImageReadError as err:
            yield index, err


def lung_labels(image_path: Path, left_path: Path, right_path: Path) -> np.ndarray:
    """Both lung masks as one (rows, cols) label map on the radiograph's pixel grid; a pixel in both is an error."""
    try:
        with PILImage.open(image_path) as opened:
            cols, rows = opened.size
    except FileNotFoundError:
        raise ImageReadError(image_path, "file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(image_path, f"not a readable image ({type(exc).__name__}: {exc})") from exc
    left, right = read_mask(left_path) > 0, read_mask(right_path) > 0
    for path, mask in ((left_path, left), (right_path, right)):
        if mask.shape != (rows, cols):
            raise ImageReadError(path, f"lung mask is {mask.shape[0]}x{mask.shape[1]} (rows x cols), its radiograph "
                                       f"{image_path} is {rows}x{cols}")
    both = left & right
    if both.any():
        raise ImageReadError(left_path, f"{int(both.sum())} pixel(s) are marked in both this left-lung mask and the "
                                        f"right-lung mask {right_path}")
    return np.where(left, LEFT_LUNG, np.where(right, RIGHT_LUNG, 0)).astype(np.uint8)
