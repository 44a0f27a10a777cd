"""Volumes -> stacks of 2-D slices, the form a 2-D backbone reads (both studies embed every slice).

Slices are taken along one axis of the canonical RAS+ volume and laid out in the radiological
convention (axial: anterior at the top, the patient's right on the image's left), then made square
at the preprocessed size by the same resize policy as 2-D images. Label maps go through the same
geometry with nearest-neighbour sampling, so slice k of a mask always lies on slice k of its image.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

AXES = {"sagittal": 0, "coronal": 1, "axial": 2}


def _display_plane(volume: np.ndarray, axis: str) -> np.ndarray:
    """(n_slices, rows, cols) in display orientation for the chosen axis of a RAS+ array."""
    index = AXES[axis]
    stacked = np.moveaxis(volume, index, 0)  # (n, a, b): the two remaining RAS axes in order
    # Rows run against the second remaining axis (anterior or superior at the top); columns against
    # the first for axial/coronal (patient right on the image left), along it for sagittal.
    stacked = np.flip(stacked, axis=2)
    if axis != "sagittal":
        stacked = np.flip(stacked, axis=1)
    return np.swapaxes(stacked, 1, 2)


def _square(plane: np.ndarray, size: int, policy: str, resample: int) -> np.ndarray:
    rows, cols = plane.shape
    if policy == "crop":
        side = min(rows, cols)
        plane = plane[(rows - side) // 2:(rows - side) // 2 + side, (cols - side) // 2:(cols - side) // 2 + side]
    elif policy == "pad":
        side = max(rows, cols)
        canvas = np.zeros((side, side), dtype=plane.dtype)
        canvas[(side - rows) // 2:(side - rows) // 2 + rows, (side - cols) // 2:(side - cols) // 2 + cols] = plane
        plane = canvas
    if plane.shape == (size, size):
        return plane
    mode = "F" if resample != Image.Resampling.NEAREST else "I"
    resized = Image.fromarray(plane.astype(np.float32 if mode == "F" else np.int32), mode=mode)
    return np.asarray(resized.resize((size, size), resample=resample), dtype=plane.dtype)


def image_slices(volume: np.ndarray, axis: str, size: int, policy: str) -> np.ndarray:
    """A [0, 1] float volume -> (n, size, size) float32 slices (bilinear)."""
    return np.stack([_square(p.astype(np.float32), size, policy, Image.Resampling.BILINEAR)
                     for p in _display_plane(volume, axis)])


def label_slices(labels: np.ndarray, axis: str, size: int, policy: str) -> np.ndarray:
    """An integer label volume -> (n, size, size) uint8 slices (nearest neighbour: no invented labels)."""
    if labels.max(initial=0) > 255 or labels.min(initial=0) < 0:
        raise ValueError(f"label values must lie in 0..255, found {labels.min()}..{labels.max()}")
    return np.stack([_square(p.astype(np.uint8), size, policy, Image.Resampling.NEAREST)
                     for p in _display_plane(labels, axis)])


def _nearest(plane: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Nearest-neighbour resize with the same sampler as the forward path, so an upsample undoes exactly."""
    if plane.shape == (rows, cols):
        return plane
    resized = Image.fromarray(plane.astype(np.int32), mode="I").resize((cols, rows), resample=Image.Resampling.NEAREST)
    return np.asarray(resized, dtype=plane.dtype)


def _unsquare(plane: np.ndarray, rows: int, cols: int, policy: str) -> np.ndarray:
    """Inverse of `_square` for a label slice: back to the (rows, cols) display plane."""
    if policy == "resize":
        return _nearest(plane, rows, cols)
    if policy == "pad":
        side = max(rows, cols)
        plane = _nearest(plane, side, side)
        return plane[(side - rows) // 2:(side - rows) // 2 + rows, (side - cols) // 2:(side - cols) // 2 + cols]
    side = min(rows, cols)  # crop: what was cut away is unknown, so it comes back as background
    canvas = np.zeros((rows, cols), dtype=plane.dtype)
    canvas[(rows - side) // 2:(rows - side) // 2 + side, (cols - side) // 2:(cols - side) // 2 + side] = \
        _nearest(plane, side, side)
    return canvas


def volume_from_label_slices(slices: np.ndarray, axis: str, shape: tuple[int, int, int], policy: str) -> np.ndarray:
    """(n, S, S) label slices laid out as by `label_slices` -> the (X, Y, Z) uint8 label volume in the canonical grid.

    The exact inverse geometry of `label_slices`, so predicted slice masks can be written back as a volume. With
    policy "pad" and S at least the in-plane sides it is the identity; with a smaller S it is an up-sampling (nearest
    neighbour); with "crop" the border that was cut away is unknown and comes back as 0 (background).
    """
    slices = np.asarray(slices)
    if axis not in AXES:
        raise ValueError(f"unknown slice axis {axis!r}; expected one of {sorted(AXES)}")
    if policy not in ("pad", "crop", "resize"):
        raise ValueError(f"unknown resize policy {policy!r}; expected pad, crop or resize")
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"volume shape must be three positive sides, got {tuple(shape)}")
    n = shape[AXES[axis]]
    if slices.ndim != 3 or slices.shape[1] != slices.shape[2] or slices.shape[0] != n:
        raise ValueError(f"expected ({n}, S, S) {axis} slices for a volume of shape {tuple(shape)}, got {slices.shape}")
    if not np.issubdtype(slices.dtype, np.integer) or slices.min(initial=0) < 0 or slices.max(initial=0) > 255:
        raise ValueError(f"label slices must be integers in 0..255, got {slices.dtype} "
                         f"{slices.min(initial=0)}..{slices.max(initial=0)}")
    first, second = (side for i, side in enumerate(shape) if i != AXES[axis])
    rows, cols = second, first  # as `_display_plane` lays them out
    planes = np.stack([_unsquare(p.astype(np.uint8), rows, cols, policy) for p in slices])  # (n, rows, cols)
    stacked = np.swapaxes(planes, 1, 2)
    if axis != "sagittal":
        stacked = np.flip(stacked, axis=1)
    stacked = np.flip(stacked, axis=2)
    return np.ascontiguousarray(np.moveaxis(stacked, 0, AXES[axis]))
