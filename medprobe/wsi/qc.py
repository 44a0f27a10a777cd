"""QC picture of a tiled slide for the report: the thumbnail, the tissue outline and every kept tile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pandas as pd
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from medprobe.atomic import atomic_path
from medprobe.figures import PNG_METADATA
from medprobe.io.slides import ReadPlan
from medprobe.wsi.tissue import thumbnail as slide_thumbnail

THUMBNAIL_PIXELS = 1024
DPI = 100


def qc_thumbnail(slide: openslide.OpenSlide, tiles: pd.DataFrame, plan: ReadPlan, mask: np.ndarray,
                 mask_downsample: float, out_path: str | Path, title: str) -> None:
    """Write a PNG drawn in level-0 coordinates, so thumbnail, mask outline and tiles line up by construction."""
    thumbnail = Image.fromarray(slide_thumbnail(slide, THUMBNAIL_PIXELS))
    width, height = slide.dimensions
    fig = Figure(figsize=(thumbnail.width / DPI, thumbnail.height / DPI + 0.6), dpi=DPI)
    ax = fig.add_subplot()
    ax.imshow(thumbnail, extent=(0, width, height, 0))
    if mask.any():  # a False border closes outlines of tissue that touches the slide's edge
        padded = np.pad(mask, 1).astype(np.float32)
        centres_x = (np.arange(padded.shape[1]) - 0.5) * mask_downsample
        centres_y = (np.arange(padded.shape[0]) - 0.5) * mask_downsample
        ax.contour(centres_x, centres_y, padded, levels=[0.5], colors="lime", linewidths=0.8)
    side = plan.tile_size_level0
    ax.add_collection(PatchCollection([Rectangle((x, y), side, side) for x, y in zip(tiles["x"], tiles["y"])],
                                      facecolor="none", edgecolor="blue", linewidth=0.4))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    ax.set_title(f"{title}\n{len(tiles)} tiles of {plan.tile_size} px at {plan.target_mpp:g} µm/px "
                 f"(level {plan.level}, base {plan.base_mpp:g} µm/px)", fontsize=8)
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata=PNG_METADATA)
