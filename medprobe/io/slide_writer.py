"""Write an RGB array as a tiled pyramidal TIFF that OpenSlide opens, for demo slides and tests.

OpenSlide reads such a file as `generic-tiff` only when every level is its own top-level, tiled page (SubIFD
pyramids collapse to one level) and takes `openslide.mpp-x/y` from resolution tags in pixels per centimetre; an
Aperio-style ImageDescription on level 0 makes it open as `aperio` instead, with objective power. The output
carries no date or other run-dependent tag, so the same array gives the same bytes.
"""

from __future__ import annotations

import numpy as np
import tifffile
from PIL import Image

from medprobe.atomic import atomic_path

SMALLEST_LEVEL_PX = 512  # levels halve until the longer side is at most this
JPEG_QUALITY = 85
COMPRESSIONS = {"jpeg": ("jpeg", {"level": JPEG_QUALITY}), None: (None, None)}
VENDORS = ("generic", "aperio")
APERIO_MAGNIFICATION_UM = 10.0  # AppMag x MPP of a standard Aperio objective: 40x at 0.25 µm/px


def write_pyramidal_tiff(path, rgb: np.ndarray, mpp: float | None, n_levels: int | None = None, tile: int = 256,
                         compression: str | None = "jpeg", vendor: str = "generic") -> None:
    """Write `rgb` (uint8, H x W x 3) as level 0 and halved levels below it, each a tiled top-level page.

    mpp: microns per level-0 pixel, stored as resolution tags (and as MPP for aperio); None leaves the resolution
    unitless (tifffile writes the baseline-required 1/1 with ResolutionUnit NONE), as some real files do.
    n_levels: None halves until the longer side is at most SMALLEST_LEVEL_PX. Reduced levels are box-averaged
    from the previous level (PIL), so memory stays a small multiple of level 0.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{path}: expected a uint8 (H, W, 3) array, got {rgb.dtype} {rgb.shape}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"{path}: compression must be one of {list(COMPRESSIONS)}, got {compression!r}")
    if vendor not in VENDORS:
        raise ValueError(f"{path}: vendor must be one of {VENDORS}, got {vendor!r}")
    if mpp is not None and not mpp > 0:
        raise ValueError(f"{path}: mpp must be positive or None, got {mpp!r}")
    if n_levels is None:
        n_levels = 1 + max(0, int(np.ceil(np.log2(max(rgb.shape[:2]) / SMALLEST_LEVEL_PX))))
    if n_levels < 1 or max(rgb.shape[:2]) >> (n_levels - 1) < 1:
        raise ValueError(f"{path}: cannot make {n_levels} levels from a {rgb.shape[1]}x{rgb.shape[0]} image")
    codec, codec_args = COMPRESSIONS[compression]
    height, width = rgb.shape[:2]
    description = None
    if vendor == "aperio":
        # OpenSlide recognises Aperio by this prefix and parses the `key = value` fields after the first '|'.
        stored = f"JPEG/RGB Q={JPEG_QUALITY}" if codec == "jpeg" else "RAW"
        fields = [f"{width}x{height} [0,0 {width}x{height}] ({tile}x{tile}) {stored}"]
        if mpp is not None:
            fields += [f"AppMag = {APERIO_MAGNIFICATION_UM / mpp:g}", f"MPP = {mpp:g}"]
        description = "Aperio Image Library v12.0.0\n" + "|".join(fields)
    level = Image.fromarray(rgb) if n_levels > 1 else None
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=rgb.size > 2**31) as tiff:
        for index in range(n_levels):
            if index:
                level = level.reduce(2)  # a 2x2 box mean; an odd last row or column is averaged on its own
            resolution = {}
            if mpp is not None:
                pixels_per_cm = 1e4 / (mpp * 2**index)
                resolution = {"resolution": (pixels_per_cm, pixels_per_cm), "resolutionunit": "CENTIMETER"}
            tiff.write(np.asarray(level) if index else rgb, tile=(tile, tile), photometric="rgb", compression=codec,
                       compressionargs=codec_args, metadata=None, subfiletype=1 if index else 0,
                       description=description if index == 0 else None, **resolution)
