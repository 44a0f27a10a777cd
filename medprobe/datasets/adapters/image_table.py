"""2-D images listed in a CSV: one row per image with its path (PNG/JPEG/TIFF or DICOM), its patient,
optional 0/1 label columns and an optional segmentation mask (a PNG label map, 0 = background).

Serves the generated demo_cxr_seg; real datasets shaped as a table plus image files are entries.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image as PILImage, UnidentifiedImageError

from medprobe.datasets.adapters import per_file_images, read_table_items
from medprobe.io.dicom import read_dicom_image
from medprobe.io.images import ImageReadError, read_raster_image


read_items = read_table_items


def _read(path: Path, channels: int, settings: dict):
    if path.suffix.lower() in (".dcm", ".dicom"):
        return read_dicom_image(path, voi_fallback=settings["voi_fallback"],
                                percentiles=tuple(settings["percentiles"]))
    return read_raster_image(path, channels)


def iter_images(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    return per_file_images(root, items, partial(_read, channels=entry.get("channels", 1), settings=settings))


def read_mask(path: Path) -> np.ndarray:
    """A PNG label map as uint8 (H, W); palette or grey, never interpolated."""
    try:
        with PILImage.open(path) as opened:
            if opened.mode not in ("L", "P", "1", "I", "I;16"):
                raise ImageReadError(path, f"a mask must be a single-channel label map, not mode {opened.mode}")
            values = np.asarray(opened)
    except FileNotFoundError:
        raise ImageReadError(path, "mask file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageReadError(path, f"not a readable mask ({type(exc).__name__}: {exc})") from exc
    if values.max(initial=0) > 255:
        raise ImageReadError(path, f"mask values must lie in 0..255, found up to {values.max()}")
    return values.astype(np.uint8)


def iter_masks(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    """(index, uint8 label map | ImageReadError) for every row, in order."""
    for index, mask_file in items["mask_file"].items():
        try:
            yield index, read_mask(root / mask_file)
        except ImageReadError as err:
            yield index, err
