"""Decoded images and the one error type every image reader raises.

Readers return pixels as float32 in [0, 1] (bright = dense for radiographs), shaped (H, W) for
grayscale or (H, W, 3) for RGB, so preprocess never needs to know which format a file came in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage, UnidentifiedImageError


class ImageReadError(ValueError):
    """A file (or array entry) that cannot become an image; the message names it and says why."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class Image:
    """Pixels in [0, 1] plus JSON-serialisable metadata."""

    pixels: np.ndarray
    meta: dict


def window(values: np.ndarray, policy: str, percentiles: tuple[float, float]) -> np.ndarray:
    """Stretch raw values onto [0, 1]: by percentiles (robust to hot pixels) or by min and max."""
    values = np.asarray(values, dtype=np.float64)
    if policy == "percentile":
        low, high = np.percentile(values, percentiles)
    elif policy == "minmax":
        low, high = values.min(), values.max()
    else:
        raise ValueError(f"unknown windowing policy {policy!r}; use 'percentile' or 'minmax'")
    if high <= low:  # a constant image carries no contrast to stretch
        return np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def read_raster_image(path: str | Path, channels: int) -> Image:
    """PNG/JPEG/TIFF -> [0, 1] by the stored bit depth (these files already hold display values)."""
    path = Path(path)
    try:
        with PILImage.open(path) as opened:
            mode = opened.mode
            if channels == 3:
                array = np.asarray(opened.convert("RGB"), dtype=np.float32) / 255.0
            elif mode in ("I;16", "I;16B", "I;16L", "I"):
                raw = np.asarray(opened, dtype=np.float64)
                scale = 65535.0 if mode.startswith("I;16") or raw.max() > 255 else 255.0
                array = (raw / scale).astype(np.float32)
            else:
                array = np.asarray(opened.convert("L"), dtype=np.float32) / 255.0
            size = opened.size
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(path, f"not a readable image ({type(exc).__name__}: {exc})") from exc
    return Image(np.clip(array, 0.0, 1.0), {"mode": mode, "rows": size[1], "cols": size[0]})
