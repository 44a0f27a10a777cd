"""The tile grid of a slide at a target MPP: level-0 corners of the tiles that are mostly tissue.

The grid steps in level-0 pixels by a float stride (tiles at a target MPP rarely span a whole number of level-0
pixels) and each corner is rounded once, so rounding never accumulates along a row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pandas as pd
from scipy.ndimage import map_coordinates

from medprobe.io.slides import ReadPlan, open_slide, read_plan
from medprobe.wsi.tissue import TISSUE_DEFAULTS, tissue_mask

TILING_DEFAULTS = {"target_mpp": 0.5, "tile_size": 224, "overlap": 0, "min_tissue": 0.5, **TISSUE_DEFAULTS,
                   "fallback_mpp": None}


def tiling_settings(settings: dict) -> dict:
    """TILING_DEFAULTS overridden by `settings`; an unknown key is an error, so a typo never silently falls back."""
    unknown = sorted(set(settings) - set(TILING_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown tiling settings {unknown}; known: {sorted(TILING_DEFAULTS)}")
    return {**TILING_DEFAULTS, **settings}


def tissue_fractions(mask: np.ndarray, mask_downsample: float, xs: np.ndarray, ys: np.ndarray,
                     size_level0: float) -> np.ndarray:
    """Fraction of each square (level-0 corner xs[i], ys[i], side size_level0) covered by the mask, counting
    partly covered mask pixels by area: the mask's summed-area table is bilinear between its grid points, so
    interpolating it at the square's corners is exact. Outside the mask counts as no tissue."""
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1))
    integral[1:, 1:] = mask.cumsum(axis=0).cumsum(axis=1)
    x0, y0 = xs / mask_downsample, ys / mask_downsample
    x1, y1 = x0 + size_level0 / mask_downsample, y0 + size_level0 / mask_downsample

    def at(u, v):
        return map_coordinates(integral, [v, u], order=1, mode="nearest")

    covered = at(x1, y1) - at(x0, y1) - at(x1, y0) + at(x0, y0)
    return covered / (size_level0 / mask_downsample) ** 2


def _starts(stride: float, extent_level0: int, extent_level: int, plan: ReadPlan) -> np.ndarray:
    """Tile corners along one axis whose read region lies wholly inside both level 0 and the level read from."""
    starts = np.round(np.arange(0.0, extent_level0, stride)).astype(np.int64)
    footprint = max(plan.tile_size_level0, plan.read_size * plan.level_downsample)
    inside = (starts + footprint <= extent_level0 + 1e-6) & \
        (starts / plan.level_downsample + plan.read_size <= extent_level + 1e-6)
    return starts[inside]


def tile_grid(slide: openslide.OpenSlide, plan: ReadPlan, mask: np.ndarray, mask_downsample: float, overlap: int,
              min_tissue: float) -> pd.DataFrame:
    """Tiles (x, y level-0 int64, tissue_fraction float32) in row-major order with tissue_fraction >= min_tissue.
    overlap is in pixels at target_mpp, so neighbouring tiles share that many pixels of their tile_size."""
    if not 0 <= overlap < plan.tile_size:
        raise ValueError(f"overlap must be in [0, tile_size={plan.tile_size}), got {overlap}")
    if not 0 <= min_tissue <= 1:
        raise ValueError(f"min_tissue must be a fraction in [0, 1], got {min_tissue}")
    stride = (plan.tile_size - overlap) * plan.tile_size_level0 / plan.tile_size
    (width, height), (level_width, level_height) = slide.dimensions, slide.level_dimensions[plan.level]
    ys, xs = np.meshgrid(_starts(stride, height, level_height, plan), _starts(stride, width, level_width, plan),
                         indexing="ij")
    xs, ys = xs.ravel(), ys.ravel()
    fractions = tissue_fractions(mask, mask_downsample, xs, ys, plan.tile_size_level0)
    keep = fractions >= min_tissue
    return pd.DataFrame({"x": xs[keep], "y": ys[keep], "tissue_fraction": fractions[keep].astype(np.float32)})


def plan_slide(path: str | Path, settings: dict) -> tuple[ReadPlan, pd.DataFrame, np.ndarray, float]:
    """Read plan, kept tiles, tissue mask and its downsample for one slide (settings over TILING_DEFAULTS)."""
    settings = tiling_settings(settings)
    with open_slide(path) as slide:
        plan = read_plan(slide, path, settings["target_mpp"], settings["tile_size"], settings["fallback_mpp"])
        mask, mask_downsample = tissue_mask(slide, settings, plan.base_mpp)
        tiles = tile_grid(slide, plan, mask, mask_downsample, settings["overlap"], settings["min_tissue"])
    return plan, tiles, mask, mask_downsample
