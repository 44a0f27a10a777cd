"""Whole-slide images through OpenSlide: opening with clear errors, the slide's MPP, and tiles at a target MPP.

Coordinates are level-0 pixels (OpenSlide's convention). A tile of `tile_size` pixels at `target_mpp` is read from
the pyramid level that needs the least downsampling without ever upsampling, then resized once; the ReadPlan
records every choice so provenance can say exactly how a tile's pixels were made.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import openslide
import tifffile
from PIL import Image

# Level downsamples of real pyramids are only nearly powers of two (odd sizes round), so a level counts as "no
# coarser than wanted" within this relative tolerance; it keeps read_size == tile_size on exact pyramids.
LEVEL_TOLERANCE = 1e-3
MPP_AGREEMENT = 0.02
MPP_SOURCE_FILE = "openslide.mpp-x/y"
MPP_SOURCE_FALLBACK = "config fallback_mpp"
# Antialiased downsampling (PIL scales the Lanczos kernel by the reduction factor), sharper than a box filter.
RESAMPLE = "LANCZOS"


class SlideError(ValueError):
    """A slide that cannot be used as asked; the message names the file and says why."""

    def __init__(self, path: str | Path, reason: str | None = None):
        # One argument is a finished message: how DataLoader re-raises a worker's error, so it stays a SlideError.
        super().__init__(str(path) if reason is None else f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def _untiled_tiff(path: Path) -> bool:
    """True for a TIFF that tifffile reads but whose first page is stored in strips, not tiles."""
    try:
        with tifffile.TiffFile(path) as tif:
            return bool(tif.pages) and not tif.pages[0].is_tiled
    except Exception:  # not a TIFF at all, or one too damaged to parse: the caller reports it as unreadable
        return False


def open_slide(path: str | Path) -> openslide.OpenSlide:
    """Open a slide with the OpenSlide library itself. openslide.open_slide would fall back to PIL for anything
    PIL reads (an untiled TIFF included), giving a one-level 'slide' with no MPP; that is refused here instead."""
    path = Path(path)
    if not path.is_file():
        raise SlideError(path, "file not found")
    if openslide.OpenSlide.detect_format(path) is None:
        if _untiled_tiff(path):
            raise SlideError(path, "untiled TIFF: OpenSlide reads only tiled pyramidal TIFFs; convert it, e.g. "
                                   "`vips tiffsave IN OUT --tile --pyramid --compression jpeg`")
        raise SlideError(path, "not a slide OpenSlide can read (corrupt or truncated file, or an unsupported format)")
    try:
        return openslide.OpenSlide(path)
    except openslide.OpenSlideError as exc:
        raise SlideError(path, f"corrupt or truncated slide ({type(exc).__name__}: {exc})") from exc


def _positive(path, name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise SlideError(path, f"{name} must be a positive number of microns per pixel, got {value!r}")
    return number


def slide_mpp(slide: openslide.OpenSlide, path: str | Path, fallback_mpp: float | None = None) -> tuple[float, str]:
    """Microns per level-0 pixel and where the value came from. The file's value wins; fallback_mpp is used only
    for a file without one. Objective power is never turned into an MPP: scanners differ too much at one power."""
    props = slide.properties
    mpp_x, mpp_y = props.get(openslide.PROPERTY_NAME_MPP_X), props.get(openslide.PROPERTY_NAME_MPP_Y)
    if mpp_x is not None and mpp_y is not None:
        mpp_x, mpp_y = _positive(path, "openslide.mpp-x", mpp_x), _positive(path, "openslide.mpp-y", mpp_y)
        if abs(mpp_x - mpp_y) > MPP_AGREEMENT * max(mpp_x, mpp_y):
            raise SlideError(path, f"non-square pixels: openslide.mpp-x {mpp_x} and openslide.mpp-y {mpp_y} differ "
                                   f"by more than {MPP_AGREEMENT:.0%}")
        return mpp_x, MPP_SOURCE_FILE
    if fallback_mpp is not None:
        return _positive(path, "fallback_mpp", fallback_mpp), MPP_SOURCE_FALLBACK
    power = props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)
    hint = f" (its objective power {power}x is not a reliable MPP and is not used)" if power else ""
    raise SlideError(path, f"the slide records no microns per pixel (openslide.mpp-x/y){hint}; set "
                           "`preprocess: {fallback_mpp: <the scanner's microns per pixel>}` under this dataset in "
                           "the config")


@dataclass(frozen=True)
class ReadPlan:
    """How tiles of one slide are read: level, sizes and the resolution they stand for."""

    level: int
    level_downsample: float
    read_size: int
    tile_size: int
    tile_size_level0: float
    base_mpp: float
    target_mpp: float
    mpp_source: str
    resample: str = RESAMPLE

    def as_dict(self) -> dict:
        return asdict(self)


def level_for_downsample(slide: openslide.OpenSlide, downsample: float) -> int:
    """The level with the largest downsample not above `downsample` (within LEVEL_TOLERANCE); level 0 if none."""
    fits = [i for i, d in enumerate(slide.level_downsamples) if d <= downsample * (1 + LEVEL_TOLERANCE)]
    return max(fits, key=lambda i: slide.level_downsamples[i], default=0)


def read_plan(slide: openslide.OpenSlide, path: str | Path, target_mpp: float, tile_size: int,
              fallback_mpp: float | None = None) -> ReadPlan:
    """The coarsest level that is still at least as fine as target_mpp (so tiles are only ever downsampled)."""
    base_mpp, source = slide_mpp(slide, path, fallback_mpp)
    target_mpp = _positive(path, "target_mpp", target_mpp)
    if isinstance(tile_size, bool) or not isinstance(tile_size, (int, np.integer)) or tile_size < 1:
        raise SlideError(path, f"tile_size must be a positive integer, got {tile_size!r}")
    ratio = target_mpp / base_mpp
    if ratio * (1 + LEVEL_TOLERANCE) < 1:
        raise SlideError(path, f"target_mpp {target_mpp} is finer than the slide's base mpp {base_mpp} "
                               f"({source}); tiles would need upsampling")
    level = level_for_downsample(slide, ratio)
    downsample = float(slide.level_downsamples[level])
    size_level0 = tile_size * ratio
    return ReadPlan(level=level, level_downsample=downsample, read_size=max(1, round(size_level0 / downsample)),
                    tile_size=int(tile_size), tile_size_level0=size_level0, base_mpp=base_mpp,
                    target_mpp=target_mpp, mpp_source=source)


def read_rgb(slide: openslide.OpenSlide, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
    """read_region composited on white (transparent = outside the scanned area, i.e. glass), as an RGB image.
    A decoding failure becomes a SlideError naming the file (OpenSlide's repr); the handle is unusable after it."""
    try:
        region = slide.read_region(location, level, size)
    except openslide.OpenSlideError as exc:
        raise SlideError(repr(slide), f"reading {size[0]}x{size[1]} pixels at level-0 {location}, level {level} "
                                      f"failed (corrupt tile data?): {exc}") from exc
    rgb = Image.new("RGB", region.size, (255, 255, 255))
    rgb.paste(region, mask=region.getchannel("A"))
    return rgb


def read_tile(slide: openslide.OpenSlide, x: int, y: int, plan: ReadPlan) -> np.ndarray:
    """uint8 RGB (tile_size, tile_size, 3) whose top-left corner is level-0 pixel (x, y)."""
    tile = read_rgb(slide, (int(x), int(y)), plan.level, (plan.read_size, plan.read_size))
    if plan.read_size != plan.tile_size:
        tile = tile.resize((plan.tile_size, plan.tile_size), Image.Resampling[plan.resample])
    return np.array(tile, dtype=np.uint8)
