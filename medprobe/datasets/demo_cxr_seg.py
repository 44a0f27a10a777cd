"""Offline demo segmentation set: demo_cxr-style chest radiographs with left and right lung-field masks.

The images use demo_cxr's thorax anatomy and exposure (no findings), so the masks are the drawn lung fields
themselves: mask value 1 is the patient's left lung (image right), 2 the right lung, as Montgomery's leftMask and
rightMask; the heart shadow is cut out of the lung fields, as in manual masks. Output is byte-identical
for the same arguments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from medprobe.atomic import atomic_path
from medprobe.datasets.demo_cxr import expose, patient_splits, thorax, write_csv

MASK_VALUES = {"background": 0, "left_lung": 1, "right_lung": 2}
MULTI_IMAGE_PATIENT_FRACTION = 0.3


def generate(out_dir: Path, n_images: int = 120, seed: int = 0, size: int = 128,
             split_fractions=(0.6, 0.2, 0.2)) -> None:
    """Write images/<id>.png (8-bit grey), masks/<id>.png (0/1/2), labels.csv and split.csv.

    labels.csv: image_id, patient_id, image, mask (paths relative to out_dir). split.csv: patient_id, split.
    """
    out_dir = Path(out_dir)
    if abs(sum(split_fractions) - 1.0) > 1e-9 or len(split_fractions) != 3:
        raise ValueError(f"split_fractions must be three fractions summing to 1, got {split_fractions}")
    rng = np.random.Generator(np.random.PCG64(seed))
    rows, patient_ids = [], []
    while len(rows) < n_images:
        patient_id = f"P{len(patient_ids):05d}"
        patient_ids.append(patient_id)
        n_patient_images = int(rng.integers(2, 4)) if rng.random() < MULTI_IMAGE_PATIENT_FRACTION else 1
        for image_index in range(min(n_patient_images, n_images - len(rows))):
            image_id = f"{len(patient_ids) - 1:05d}_{image_index:02d}"
            x, y, density, lungs, heart = thorax(rng, (size, size))
            image = np.round(expose(rng, x, y, density) * 255).astype(np.uint8)
            mask = np.zeros((size, size), dtype=np.uint8)
            field = (lungs > 0.5) & (heart <= 0.5)
            mask[_largest_component(field & (x > 0))] = MASK_VALUES["left_lung"]  # x grows toward the image right
            mask[_largest_component(field & (x <= 0))] = MASK_VALUES["right_lung"]
            _write_png(out_dir / "images" / f"{image_id}.png", image)
            _write_png(out_dir / "masks" / f"{image_id}.png", mask)
            rows.append([image_id, patient_id, f"images/{image_id}.png", f"masks/{image_id}.png"])
    write_csv(out_dir / "labels.csv", ["image_id", "patient_id", "image", "mask"], rows)
    splits = patient_splits(rng, len(patient_ids), split_fractions)
    write_csv(out_dir / "split.csv", ["patient_id", "split"], list(zip(patient_ids, splits)))


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """Drop slivers the heart outline cuts off the lung base: one lung is one connected region."""
    components, count = ndimage.label(mask)
    if count <= 1:
        return mask
    return components == 1 + np.argmax(ndimage.sum_labels(mask, components, range(1, count + 1)))


def _write_png(path: Path, pixels: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
