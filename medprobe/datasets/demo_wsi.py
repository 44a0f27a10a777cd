"""Offline demo whole-slide images: small H&E-like pyramidal TIFFs, about half with tumour-like regions.

Each patient has one slide: pink stroma with slow stain variation, fibres, small gaps and scattered small nuclei
(elongated fibroblasts, round lymphocytes) in one or two irregular tissue pieces on near-white, neutral grey glass.
Half the slides carry one or two small tumour regions of crowded, large, dark nuclei in purple cytoplasm, wholly
inside the tissue (part of one to a few 224 µm tiles), so the slide label is plain in the tiles that hold them
and diluted in a slide's mean. A CONTROL label is drawn independently of the pixels and must score at
chance. The files vary the way real archives do: most are generic TIFFs at 0.5 µm/px, every fourth an
Aperio-style file at 0.25 µm/px (40x), one carries no resolution at all (the demo config supplies fallback_mpp),
and one training slide is blank glass, which the pipeline must skip and count. Output is byte-identical for the
same arguments: every draw derives from `seed` and the TIFFs carry no date.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from medprobe.datasets.demo_cxr import patient_splits, write_csv
from medprobe.io.slide_writer import write_pyramidal_tiff

TUMOR = "tumor"
CONTROL = "control"
SPLITS = ("train", "val", "test")

COARSE_UM = 8.0  # outlines and slow stain variation are drawn on this grid
TEXTURE_UM = 2.0  # fibres and gaps of the stroma
DRAW_UM = 1.0  # the rest, nuclei included; slides at other resolutions are resampled from it
WIDTH_UM, HEIGHT_UM = (1200, 1800), (800, 1200)
# How each slide is stored, by slide index: (vendor, microns per level-0 pixel).
FORMAT_CYCLE = (("generic", 0.5), ("generic", 0.5), ("aperio", 0.25), ("generic", 0.5))
NO_MPP_INDEX = 1  # this slide's file has no resolution tags (a generic 0.5 µm/px slide in FORMAT_CYCLE)
MIN_SLIDES = 8  # fewer cannot give every split both classes plus the blank and the no-MPP slide

MIN_PIECE_UM2 = 20000.0  # tissue fragments smaller than this are dropped
# Small tumour regions (one or two, 60-160 µm, i.e. part of one to a few 224 µm tiles): clear in the tiles that hold
# them, diluted in the mean over a slide's tiles, as micro-metastases are; the case for attention MIL.
TUMOR_REGIONS = (1, 2)  # inclusive
TUMOR_RADIUS_UM = (60, 160)
TUMOR_MARGIN_UM = 40  # tumour stays this far inside the tissue outline
# Nuclei as (density per mm² of their compartment, minor semi-axis range µm, elongation range, hematoxylin range).
NUCLEI = {
    "fibroblast": (1100, (1.6, 2.4), (2.0, 3.2), (0.55, 0.85)),
    "lymphocyte": (450, (2.4, 3.2), (1.0, 1.15), (0.85, 1.1)),
    "tumour": (5000, (4.5, 6.5), (1.0, 1.5), (0.75, 1.05)),
}
NUCLEUS_SHAPES = 16  # random ellipses per kind and slide; each nucleus takes one
# Optical density per unit stain (R, G, B): hematoxylin after Ruifrok & Johnston; eosin absorbing some blue too,
# so stroma is pink rather than magenta.
HEMATOXYLIN_OD = np.array([0.650, 0.704, 0.286], dtype=np.float32)
EOSIN_OD = np.array([0.05, 1.0, 0.35], dtype=np.float32)
LN10 = np.float32(np.log(10))


def generate(out_dir: Path, n_slides: int = 40, seed: int = 0, split_fractions=(0.5, 0.2, 0.3)) -> None:
    """Write slides/<slide_id>.tif, labels.csv and split.csv.

    labels.csv: slide_id, patient_id, slide (relative to out_dir), tumor (0/1), control (0/1). split.csv:
    patient_id, split (one slide per patient, stratified by tumor so every split holds both classes).
    """
    out_dir = Path(out_dir)
    if abs(sum(split_fractions) - 1.0) > 1e-9 or len(split_fractions) != 3:
        raise ValueError(f"split_fractions must be three fractions summing to 1, got {split_fractions}")
    if n_slides < MIN_SLIDES:
        raise ValueError(f"n_slides must be at least {MIN_SLIDES}, got {n_slides}")
    rng = np.random.Generator(np.random.PCG64(seed))
    patient_ids = [f"P{index:05d}" for index in range(n_slides)]
    tumors = rng.permutation(np.arange(n_slides) < n_slides // 2).astype(int)
    controls = rng.permutation(np.arange(n_slides) < n_slides // 2).astype(int)
    splits = np.empty(n_slides, dtype=object)
    for value in (0, 1):
        members = np.flatnonzero(tumors == value)
        splits[members] = patient_splits(rng, len(members), split_fractions)
    for split in SPLITS:
        if set(tumors[splits == split]) != {0, 1}:
            raise ValueError(f"split_fractions {split_fractions} leave {split} without both classes "
                             f"for {n_slides} slides")
    # The blank slide is a training negative, so a skipped slide never removes a class from an evaluated split.
    candidates = [index for index in range(n_slides)
                  if splits[index] == "train" and not tumors[index] and index != NO_MPP_INDEX]
    if not candidates:
        raise ValueError(f"split_fractions {split_fractions} leave no training negative for the blank slide")
    blank = candidates[0]

    rows = []
    for index, patient_id in enumerate(patient_ids):
        slide_id = f"wsi_{index:04d}"
        vendor, mpp = FORMAT_CYCLE[index % len(FORMAT_CYCLE)]
        slide_rng = np.random.Generator(np.random.PCG64([seed, index]))
        rgb = _scene(slide_rng, mpp, bool(tumors[index]), index == blank)
        path = f"slides/{slide_id}.tif"
        write_pyramidal_tiff(out_dir / path, rgb, None if index == NO_MPP_INDEX else mpp, vendor=vendor)
        rows.append([slide_id, patient_id, path, int(tumors[index]), int(controls[index])])
    write_csv(out_dir / "labels.csv", ["slide_id", "patient_id", "slide", TUMOR, CONTROL], rows)
    write_csv(out_dir / "split.csv", ["patient_id", "split"], list(zip(patient_ids, splits.tolist())))


def _scene(rng: np.random.Generator, mpp: float, tumor: bool, blank: bool) -> np.ndarray:
    """uint8 RGB at `mpp`: Beer-Lambert mix of hematoxylin and eosin over glass with uneven illumination.

    Drawn at DRAW_UM and upsampled to `mpp`, so the cost per slide barely depends on the scan resolution.
    """
    coarse = tuple(round(rng.uniform(*extent) / COARSE_UM) for extent in (HEIGHT_UM, WIDTH_UM))
    texture, fine, full = (tuple(round(n * COARSE_UM / um) for n in coarse) for um in (TEXTURE_UM, DRAW_UM, mpp))
    glass = rng.uniform(236, 248) + 2.5 * _upsample(_noise(rng, coarse, 12), fine)
    glass += rng.standard_normal(fine, dtype=np.float32)  # sensor noise, grey so that glass stays unsaturated
    if blank:
        depth = tumour_depth = np.full(coarse, -1e3, dtype=np.float32)
    else:
        depth = _tissue_depth(rng, coarse)
        tumour_depth = _tumour_depth(rng, depth) if tumor else np.full(coarse, -1e3, dtype=np.float32)
    tissue = np.clip(_upsample(depth, fine) / 2 + 0.5, 0, 1)  # ~2 µm soft edge
    tumour = np.clip(_upsample(tumour_depth, fine) / 4 + 0.5, 0, 1)

    # Eosin: slow stain variation, fibres whose orientation drifts, and small gaps; less of it in tumour.
    drift = _upsample(1 / (1 + np.exp(-2 * _noise(rng, coarse, 5))), texture)
    fibres = drift * _noise(rng, texture, (0.7, 5)) + (1 - drift) * _noise(rng, texture, (5, 0.7))
    fibres[_noise(rng, texture, 4) > 1.6] = -4.25  # gaps: eosin * (1 + 0.2 * -4.25) = 15 %
    stain = rng.uniform(0.16, 0.24) * (1 + 0.15 * _noise(rng, coarse, 4))
    eosin = _upsample(stain, fine) * (1 + 0.2 * _upsample(fibres, fine)) * (1 - 0.3 * tumour) * tissue
    hematoxylin = (rng.uniform(0.02, 0.04) + rng.uniform(0.06, 0.14) * tumour) * tissue

    nuclei = np.zeros(fine, dtype=np.float32)
    stroma, cancer = (tissue > 0.5) & (tumour < 0.5), tumour >= 0.5
    _stamp_nuclei(rng, nuclei, stroma, "fibroblast")
    _stamp_nuclei(rng, nuclei, stroma, "lymphocyte")
    if tumor:
        _stamp_nuclei(rng, nuclei, cancer, "tumour")
    hematoxylin += nuclei
    eosin *= 1 - 0.7 * np.minimum(nuclei, 1)  # a nucleus displaces most of the eosin under it

    # Per-slide stain strength and hue, as between labs and staining batches.
    h_vector, e_vector = _stain_vector(rng, HEMATOXYLIN_OD), _stain_vector(rng, EOSIN_OD)
    rgb = np.empty((*fine, 3), dtype=np.uint8)
    for channel in range(3):
        optical_density = hematoxylin * h_vector[channel] + eosin * e_vector[channel]
        rgb[:, :, channel] = np.clip(glass * np.exp(-LN10 * optical_density), 0, 255)
    if full == fine:
        return rgb
    return np.array(Image.fromarray(rgb).resize(full[::-1], Image.Resampling.BILINEAR))


def _stain_vector(rng: np.random.Generator, vector: np.ndarray) -> np.ndarray:
    """`vector` with a random strength and hue shift, never negative."""
    return np.clip(vector * rng.uniform(0.8, 1.2) + rng.normal(0, 0.03, 3), 0, None).astype(np.float32)


def _tissue_depth(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Signed distance (µm, positive inside) to the outline of one or two irregular tissue pieces."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    pieces = 1 if rng.random() < 0.7 else 2
    field = np.full(shape, -np.inf, dtype=np.float32)
    for piece in range(pieces):
        center_x = shape[1] * ((piece + 0.5) / pieces + rng.normal(0, 0.03))
        center_y = shape[0] * rng.uniform(0.45, 0.55)
        half_x, half_y = shape[1] / pieces * rng.uniform(0.36, 0.44), shape[0] * rng.uniform(0.34, 0.42)
        angle = rng.uniform(-0.3, 0.3)
        u, v = x - center_x, y - center_y
        u, v = u * np.cos(angle) + v * np.sin(angle), v * np.cos(angle) - u * np.sin(angle)
        radius = np.sqrt((u / half_x) ** 2 + (v / half_y) ** 2)
        field = np.maximum(field, 1 - radius + 0.18 * _noise(rng, shape, 6) + 0.06 * _noise(rng, shape, 2))
    border = np.minimum.reduce([y, x, shape[0] - 1 - y, shape[1] - 1 - x])
    mask = (field > 0) & (border >= 3)  # tissue never touches the slide's edge
    fragments, _ = ndimage.label(mask)
    large = np.bincount(fragments.ravel()) * COARSE_UM**2 >= MIN_PIECE_UM2
    large[0] = False
    return _signed_distance(large[fragments])


def _tumour_depth(rng: np.random.Generator, depth: np.ndarray) -> np.ndarray:
    """Signed distance (µm) to one to three irregular tumour regions lying wholly inside the tissue."""
    y, x = np.mgrid[0 : depth.shape[0], 0 : depth.shape[1]].astype(np.float32)
    mask = np.zeros(depth.shape, dtype=bool)
    for _ in range(rng.integers(TUMOR_REGIONS[0], TUMOR_REGIONS[1] + 1)):
        radius = min(rng.uniform(*TUMOR_RADIUS_UM), 0.9 * (depth.max() - TUMOR_MARGIN_UM))
        candidates = np.argwhere(depth >= radius + TUMOR_MARGIN_UM)
        center_y, center_x = candidates[rng.integers(len(candidates))]
        distance = np.hypot(y - center_y, x - center_x) * COARSE_UM / radius
        mask |= 1 - distance + 0.2 * _noise(rng, depth.shape, 4) > 0
    mask &= depth >= TUMOR_MARGIN_UM
    return _signed_distance(mask)


def _stamp_nuclei(rng: np.random.Generator, canvas: np.ndarray, where: np.ndarray, kind: str) -> None:
    """Paint soft elliptical nuclei (hematoxylin amount) on `canvas` at Poisson points where `where` holds.

    Vectorised per shape: every nucleus of one shape is written with one fancy-indexed maximum.
    """
    density, semi_axes, elongations, intensities = NUCLEI[kind]
    area_mm2 = canvas.size * (DRAW_UM / 1000) ** 2
    points = (rng.random((rng.poisson(density * area_mm2), 2)) * canvas.shape).astype(np.int64)
    points = points[where[points[:, 0], points[:, 1]]]
    shapes = rng.integers(0, NUCLEUS_SHAPES, len(points))
    strength = rng.uniform(*intensities, len(points)).astype(np.float32)
    flat = canvas.reshape(-1)
    for shape in range(NUCLEUS_SHAPES):
        offsets, weights = _nucleus(rng, semi_axes, elongations, textured=kind == "tumour")
        chosen = shapes == shape
        rows = points[chosen, :1] + offsets[:, 0]
        cols = points[chosen, 1:] + offsets[:, 1]
        inside = (rows >= 0) & (rows < canvas.shape[0]) & (cols >= 0) & (cols < canvas.shape[1])
        index = (rows * canvas.shape[1] + cols)[inside]
        flat[index] = np.maximum(flat[index], (strength[chosen, None] * weights)[inside])


def _nucleus(rng: np.random.Generator, semi_axes, elongations, textured: bool):
    """(pixel offsets (n, 2), weights (n,)) of one soft ellipse at a random size, elongation and angle."""
    minor = rng.uniform(*semi_axes) / DRAW_UM
    major = minor * rng.uniform(*elongations)
    angle = rng.uniform(0, np.pi)
    reach = int(np.ceil(major)) + 1
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    u, v = dx * np.cos(angle) + dy * np.sin(angle), dy * np.cos(angle) - dx * np.sin(angle)
    weights = np.clip((1 - np.sqrt((u / major) ** 2 + (v / minor) ** 2)) * 4, 0, 1).astype(np.float32)
    if textured:  # coarse chromatin of tumour nuclei
        weights *= 0.8 + 0.2 * rng.random(weights.shape, dtype=np.float32)
    keep = weights > 0
    return np.stack([dy[keep], dx[keep]], axis=1), weights[keep]


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to unit standard deviation (float32)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma, mode="wrap")
    return field / max(float(field.std()), 1e-6)


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Microns from each coarse pixel to the mask's outline, positive inside (-1e3 everywhere for no mask),
    smoothed so that the outline upsampled from it is round rather than a staircase of coarse pixels."""
    if not mask.any():
        return np.full(mask.shape, -1e3, dtype=np.float32)
    inside = ndimage.distance_transform_edt(mask) - 0.5
    outside = ndimage.distance_transform_edt(~mask) - 0.5
    return ndimage.gaussian_filter((np.where(mask, inside, -outside) * COARSE_UM).astype(np.float32), 1.0)


def _upsample(field: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float field to (rows, cols), in C via PIL."""
    return np.array(Image.fromarray(field.astype(np.float32)).resize((shape[1], shape[0]), Image.Resampling.BILINEAR))
