"""Report figures for slides: MIL attention over the tiles of a slide, drawn on its thumbnail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

THUMBNAIL_SIDE = 1024  # pixels, the longer side


def attention_heatmap(slide_path: Path, plan, tiles: pd.DataFrame, weights: np.ndarray, out_path: Path,
                      title: str) -> None:
    """The thumbnail beside the same thumbnail with each tile filled by its attention weight.

    Weights are shown relative to a uniform attention (weight x number of tiles), on a log colour scale centred
    on 1, so "this tile counts k times its share" reads the same on slides with 10 or 10,000 tiles.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    from medprobe.io.slides import open_slide
    from medprobe.wsi.tissue import thumbnail as slide_thumbnail

    if len(weights) != len(tiles):
        raise ValueError(f"{slide_path}: {len(weights)} attention weights for {len(tiles)} tiles")
    slide = open_slide(slide_path)
    try:
        width, height = slide.dimensions
        thumbnail = slide_thumbnail(slide, THUMBNAIL_SIDE)
    finally:
        slide.close()
    scale = thumbnail.shape[1] / width  # thumbnail pixels per level-0 pixel
    side = plan.tile_size_level0 * scale
    relative = np.asarray(weights, dtype=np.float64) * len(weights)
    span = max(float(np.abs(np.log10(relative)).max()), 0.5)
    figure, axes = plt.subplots(1, 2, figsize=(10, 5 * height / width + 0.8), constrained_layout=True)
    for ax in axes:
        ax.imshow(thumbnail)
        ax.set_axis_off()
    patches = PatchCollection([Rectangle((x * scale, y * scale), side, side) for x, y in zip(tiles["x"], tiles["y"])],
                              cmap="coolwarm", norm=LogNorm(10 ** -span, 10**span), alpha=0.65)
    patches.set_array(relative)
    axes[1].add_collection(patches)
    figure.colorbar(patches, ax=axes[1], shrink=0.8, label="attention x number of tiles")
    figure.suptitle(title, fontsize=9)
    figure.savefig(out_path, dpi=100)
    plt.close(figure)
