"""BTCV (Multi-Atlas Labeling Beyond the Cranial Vault, Synapse syn3193805) as Abdomen/RawData.zip unpacks:
RawData/Training/img/img<nnnn>.nii.gz with RawData/Training/label/label<nnnn>.nii.gz, the organ label map on the
same voxel grid. The entry lists the 30 case numbers, so a missing file is named before any volume is read. One
scan per patient, so the patient is the case.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.filebasedimages import ImageFileError

from medprobe.datasets.adapters import LayoutError, require_files
from medprobe.io.images import ImageReadError
from medprobe.io.volumes import AFFINE_ATOL_MM, VolumeReadError, read_nifti, read_nifti_labels


def _pairs(spec: dict) -> list[tuple[str, str, str]]:
    """(case id, image path, label path) per listed case."""
    return [(f"img{n:04d}", f"{spec['image_dir']}/img{n:04d}.nii.gz", f"{spec['label_dir']}/label{n:04d}.nii.gz")
            for n in spec["cases"]]


def check_layout(root: Path, entry: dict, options: dict) -> None:
    """The two folders first (a wrong `path` gets a short message and a pointer), then every listed file."""
    spec, layout = entry["labels"], entry["source"]["layout"]
    try:
        require_files(root, [spec["image_dir"], spec["label_dir"]], layout)
    except LayoutError as err:
        near = [root.parent, *sorted(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []
        found = [p for p in near if (p / spec["image_dir"]).is_dir()]
        if found:
            raise LayoutError(f"{err}\n{spec['image_dir']} is in {found[0]}: set `path` to that folder") from None
        raise
    require_files(root, [path for _, image, label in _pairs(spec) for path in (image, label)], layout)


def read_items(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    check_layout(root, entry, options)
    cases, images, labels = zip(*_pairs(entry["labels"]))
    return pd.DataFrame({"item_id": cases, "patient_id": cases, "source_file": images, "split": "",
                         "mask_file": labels})


def iter_volumes(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    """(index, canonical Volume | ImageReadError) for every row, in order."""
    for index, source_file in items["source_file"].items():
        try:
            yield index, read_nifti(root / source_file)
        except ImageReadError as err:
            yield index, err


def iter_masks(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    """(index, canonical uint8 organ labels | ImageReadError) for every row, each checked against its image's grid."""
    for index, row in items.iterrows():
        try:
            labels = read_nifti_labels(root / row["mask_file"])
            _check_grid(labels.meta, root / row["mask_file"], root / row["source_file"])
            yield index, labels.data
        except ImageReadError as err:
            yield index, err


def _check_grid(label_meta: dict, label_path: Path, image_path: Path) -> None:
    """The label file's voxel grid must be its image's (compared on the headers: the image voxels stay on disk)."""
    try:
        image = nib.load(image_path)
    except (ImageFileError, OSError, ValueError, EOFError) as exc:
        raise VolumeReadError(image_path, f"not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc
    shape, label_shape = tuple(image.shape[:3]), tuple(label_meta["original_shape"][:3])
    difference = float(np.abs(np.asarray(label_meta["original_affine"]) - image.affine).max())
    if shape != label_shape or difference > AFFINE_ATOL_MM:
        raise VolumeReadError(label_path, f"label grid (shape {label_shape}) does not match its image {image_path} "
                                          f"(shape {shape}; affines differ by up to {difference:.4g} mm)")
