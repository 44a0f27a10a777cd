"""Tissue mask of a slide: Otsu on HSV saturation of a low-resolution image, then small regions removed.

Stained tissue is coloured while glass, background and black scanner borders have near-zero saturation, so one
saturation threshold separates them regardless of stain intensity. Sizes are in µm² so the filter means the same
at every scan resolution.
"""

from __future__ import annotations

import math

import numpy as np
import openslide
from PIL import Image
from skimage.color import rgb2hsv
from skimage.filters import threshold_otsu
from skimage.morphology import remove_small_holes, remove_small_objects

from medprobe.io.slides import level_for_downsample, read_rgb, slide_mpp

TISSUE_DEFAULTS = {"tissue_mpp": 8.0, "min_area_um2": 10000.0}
# Otsu always splits an image in two, even bare glass (noise and illumination tints reach a few hundredths of
# saturation); stained tissue never lies this low.
MIN_SATURATION = 0.05


MAX_READ_PIXELS = 1 << 26  # a level larger than this (64 M pixels) is read and reduced in bands of rows


def low_resolution_rgb(slide: openslide.OpenSlide, downsample: float) -> np.ndarray:
    """The whole slide as uint8 RGB at level-0 pixels / `downsample`, area-averaged from the nearest finer level.

    A pyramid without a level near the wanted downsample (a 2-level scan of a whole slide) would put gigabytes in
    memory read whole, so a large level is read in bands of rows, each reduced on its own: memory stays about
    MAX_READ_PIXELS whatever the slide's size.
    """
    level = level_for_downsample(slide, downsample)
    width, height = slide.dimensions
    size = (max(1, round(width / downsample)), max(1, round(height / downsample)))
    level_width, level_height = slide.level_dimensions[level]
    if level_width * level_height <= MAX_READ_PIXELS:
        image = read_rgb(slide, (0, 0), level, (level_width, level_height))
        return np.asarray(image if image.size == size else image.resize(size, Image.Resampling.BOX))
    rows_per_output = level_height / size[1]
    band = max(1, int(MAX_READ_PIXELS / level_width / rows_per_output))  # output rows per band
    reduced = []
    for top in range(0, size[1], band):
        bottom = min(size[1], top + band)
        first, last = round(top * rows_per_output), round(bottom * rows_per_output)
        location = (0, round(first * slide.level_downsamples[level]))
        strip = read_rgb(slide, location, level, (level_width, max(1, last - first)))
        reduced.append(np.asarray(strip.resize((size[0], bottom - top), Image.Resampling.BOX)))
    return np.concatenate(reduced)


def thumbnail(slide: openslide.OpenSlide, longest_side: int) -> np.ndarray:
    """The slide as uint8 RGB with its longer side at most `longest_side`, in bounded memory (for figures)."""
    width, height = slide.dimensions
    return low_resolution_rgb(slide, max(1.0, max(width, height) / longest_side))


def tissue_mask(slide: openslide.OpenSlide, settings: dict, base_mpp: float | None = None) -> tuple[np.ndarray, float]:
    """(bool mask (h, w), level-0 pixels per mask pixel). base_mpp defaults to the slide's own (or
    settings["fallback_mpp"]); pass the ReadPlan's to skip the lookup. A blank slide gives an all-False mask."""
    settings = {**TISSUE_DEFAULTS, **settings}
    if base_mpp is None:
        base_mpp, _ = slide_mpp(slide, repr(slide), settings.get("fallback_mpp"))
    downsample = max(float(settings["tissue_mpp"]) / base_mpp, 1.0)  # never finer than level 0
    saturation = rgb2hsv(low_resolution_rgb(slide, downsample))[..., 1]
    # >=: an image of one saturation has its own value as Otsu threshold, and uniform tissue is still tissue
    mask = saturation >= max(float(threshold_otsu(saturation)), MIN_SATURATION)
    min_area_px = float(settings["min_area_um2"]) / (downsample * base_mpp) ** 2
    smaller = max(0, math.ceil(min_area_px) - 1)  # skimage removes regions of at most max_size pixels
    mask = remove_small_holes(mask, max_size=smaller)
    return remove_small_objects(mask, max_size=smaller), downsample
