"""Volumes in one canonical form: float32 voxels in RAS+ order, spacing in mm, and where they came from.

Every reader (NIfTI here, DICOM series in dicom_series.py) ends in `canonical_volume`, so downstream code
takes axial slices as data[:, :, k] whatever voxel order the source used. meta keeps the source's original
affine and shape, so a prediction made on the canonical grid can be written back onto the source's grid.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, replace
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.orientations import aff2axcodes, io_orientation, ornt_transform
from scipy import ndimage

from medprobe.atomic import atomic_path
from medprobe.io.images import ImageReadError

AFFINE_ATOL_MM = 1e-3  # image and label headers routinely differ by float32 rounding, never by more


class VolumeReadError(ImageReadError):
    """A file or series that cannot become a 3-D volume; the message names it and says why."""


@dataclass(frozen=True, eq=False)  # arrays inside: compare data and affine explicitly
class Volume:
    """Voxels (X, Y, Z) in RAS+ order; float32 for images, uint8 for label maps.

    affine maps voxel indices of `data` to RAS mm; spacing is mm along the array axes; meta is
    JSON-serialisable and records the source (format, original axis codes, shape and affine).
    """

    data: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    meta: dict


def read_nifti(path: str | Path) -> Volume:
    """A 3-D NIfTI-1/2 image (scl_slope/inter applied) as a canonical float32 Volume.

    A 4-D file with more than one volume is refused rather than silently reduced to its first volume.
    """
    path = Path(path)
    img, meta = _load_3d(path)
    return canonical_volume(img, path, meta)


def read_nifti_labels(path: str | Path, like: Volume | None = None, atol: float = AFFINE_ATOL_MM) -> Volume:
    """An integer label map (0..255) as a uint8 Volume on the canonical grid, reoriented without interpolation.

    With `like`, the labels must lie on that image's grid (same canonical shape, affine within `atol` mm).
    """
    path = Path(path)
    img, meta = _load_3d(path)
    try:
        values = np.asanyarray(img.dataobj)
    except (OSError, ValueError, EOFError) as exc:
        raise VolumeReadError(path, f"voxel data unreadable ({type(exc).__name__}: {exc})") from exc
    if not np.issubdtype(values.dtype, np.integer):
        if not np.all(np.isfinite(values)) or np.any(values != np.rint(values)):
            raise VolumeReadError(path, f"label map holds non-integer values (dtype {values.dtype})")
    if values.size and (values.min() < 0 or values.max() > 255):
        raise VolumeReadError(path, f"label values span {values.min()}..{values.max()}; expected 0..255")
    canonical = nib.as_closest_canonical(type(img)(values.astype(np.uint8), img.affine, img.header))
    labels = Volume(np.ascontiguousarray(np.asanyarray(canonical.dataobj)), canonical.affine,
                    _zooms(canonical), {**meta, **_original_geometry(img)})
    if like is not None:
        _check_same_grid(labels, like, atol)
    return labels


def canonical_volume(img: nib.spatialimages.SpatialImage, source: str | Path, meta: dict) -> Volume:
    """Reorient a 3-D image to the closest RAS+ voxel order and replace non-finite voxels.

    NaN and +/-inf become the smallest finite value (background for CT and MR alike); their number
    is kept in meta["n_nonfinite"] and the fill value in meta["nonfinite_fill"].
    """
    try:
        canonical = nib.as_closest_canonical(img)
        data = np.ascontiguousarray(canonical.get_fdata(dtype=np.float32))
    except (OSError, ValueError, EOFError) as exc:  # truncated or corrupt voxel data surfaces only here
        raise VolumeReadError(source, f"voxel data unreadable ({type(exc).__name__}: {exc})") from exc
    finite = np.isfinite(data)
    n_nonfinite = int(data.size - np.count_nonzero(finite))
    fill = None
    if n_nonfinite:
        if n_nonfinite == data.size:
            raise VolumeReadError(source, "every voxel is NaN or infinite")
        fill = float(data[finite].min())
        data[~finite] = fill
    meta = {**meta, **_original_geometry(img), "n_nonfinite": n_nonfinite, "nonfinite_fill": fill}
    return Volume(data, canonical.affine, _zooms(canonical), meta)


def resampled_grid(shape: tuple[int, ...], affine: np.ndarray, spacing) -> tuple[tuple[int, int, int], np.ndarray]:
    """The (shape, affine) of a grid with `spacing` mm over the same extent: the first voxel centre stays put and
    the extent is kept to the nearest voxel. Images, their label maps and predictions all share it."""
    old = np.asarray(_zooms_of(affine), dtype=np.float64)
    new = np.asarray(spacing, dtype=np.float64)
    if new.shape != (3,) or np.any(new <= 0):
        raise ValueError(f"target spacing must be three positive numbers, got {spacing}")
    step = new / old  # input voxels per output voxel
    new_shape = tuple(max(1, round(n / s)) for n, s in zip(shape, step))
    return new_shape, np.asarray(affine, dtype=np.float64) @ np.diag([*step, 1.0])


def resample(volume: Volume, spacing: tuple[float, float, float], labels: bool = False) -> tuple[Volume, dict]:
    """Resample onto `spacing` mm (see `resampled_grid`): linear for images, nearest for label maps (labels=True).

    Returns the new Volume and the parameters used, for the preprocessing spec.
    """
    shape, affine = resampled_grid(volume.data.shape, volume.affine, spacing)
    order = 0 if labels else 1
    data = onto_grid(volume.data, volume.affine, shape, affine, order=order, mode="nearest")
    params = {"method": "resample", "spacing": [float(s) for s in spacing], "order": order,
              "from_spacing": [float(s) for s in volume.spacing], "from_shape": list(volume.data.shape),
              "shape": list(shape)}
    meta = {**volume.meta, "resample": params}
    return replace(volume, data=data, affine=affine, spacing=_zooms_of(affine), meta=meta), params


def onto_grid(data: np.ndarray, affine: np.ndarray, shape: tuple[int, ...], target_affine: np.ndarray,
              order: int = 0, mode: str = "constant") -> np.ndarray:
    """`data` (on `affine`) sampled at the voxel centres of the grid (`shape`, `target_affine`), both in the same
    world frame. order 0 (nearest) for label maps: a prediction made on a resampled grid goes back to the label
    map's own grid this way; outside the source, mode 'constant' gives 0 (background)."""
    to_source = np.linalg.inv(np.asarray(affine, dtype=np.float64)) @ np.asarray(target_affine, dtype=np.float64)
    return ndimage.affine_transform(data, to_source[:3, :3], offset=to_source[:3, 3], output_shape=tuple(shape),
                                    order=order, mode=mode, cval=0)


def write_nifti(data: np.ndarray, affine: np.ndarray, path: str | Path, original_affine=None) -> Path:
    """Write `data` (dtype kept) as .nii or .nii.gz; byte-identical for identical inputs.

    With `original_affine` (a source's meta["original_affine"]), `data` and `affine` are on that source's
    canonical grid and are flipped and permuted back to the source's voxel order before writing, so a
    prediction overlays the original file voxel for voxel.
    """
    path = Path(path)
    if not path.name.endswith((".nii", ".nii.gz")):
        raise ValueError(f"{path}: a NIfTI file name must end in .nii or .nii.gz")
    img = nib.Nifti1Image(np.asarray(data), np.asarray(affine, dtype=np.float64))
    if original_affine is not None:
        original_affine = np.asarray(original_affine, dtype=np.float64)
        img = img.as_reoriented(ornt_transform(io_orientation(img.affine), io_orientation(original_affine)))
        if not np.allclose(img.affine, original_affine, atol=AFFINE_ATOL_MM):
            raise ValueError(f"{path}: data is not on the canonical grid of the source it is written back to "
                             f"(affine after reorientation {img.affine.tolist()} != {original_affine.tolist()})")
        img = nib.Nifti1Image(np.asanyarray(img.dataobj), original_affine)
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    img.header.set_xyzt_units("mm")
    payload = img.to_bytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return path


def open_nifti(path: Path) -> tuple[nib.spatialimages.SpatialImage, dict]:
    """A NIfTI-1/2 image (voxels not yet read) and a description of the file for meta; VolumeReadError otherwise."""
    if not path.is_file():
        raise VolumeReadError(path, "file not found")
    try:
        img = nib.load(path)
    except (ImageFileError, OSError, ValueError, EOFError) as exc:
        raise VolumeReadError(path, f"not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise VolumeReadError(path, f"is a {type(img).__name__}, not a NIfTI-1/2 image")
    meta = {
        "source": str(path),
        "source_format": type(img).__name__.removesuffix("Image").lower(),
        "data_dtype": img.get_data_dtype().name,
        "scl_slope": float(img.dataobj.slope),  # the proxy applies these; the loaded header no longer has them
        "scl_inter": float(img.dataobj.inter),
    }
    return img, meta


def _load_3d(path: Path) -> tuple[nib.spatialimages.SpatialImage, dict]:
    """The image (trailing singleton axes dropped) and a description of the file for meta."""
    img, meta = open_nifti(path)
    if len(img.shape) < 3 or any(n != 1 for n in img.shape[3:]):
        raise VolumeReadError(path, f"has shape {img.shape}; expected a 3-D volume (X, Y, Z)")
    if len(img.shape) > 3:
        try:
            img = type(img)(np.asanyarray(img.dataobj).reshape(img.shape[:3]), img.affine, img.header)
        except (OSError, ValueError, EOFError) as exc:
            raise VolumeReadError(path, f"voxel data unreadable ({type(exc).__name__}: {exc})") from exc
    return img, meta


def _original_geometry(img: nib.spatialimages.SpatialImage) -> dict:
    return {"original_axcodes": list(aff2axcodes(img.affine)), "original_shape": [int(n) for n in img.shape],
            "original_affine": np.asarray(img.affine, dtype=np.float64).tolist()}


def _zooms(img: nib.spatialimages.SpatialImage) -> tuple[float, float, float]:
    return tuple(float(z) for z in img.header.get_zooms()[:3])


def _zooms_of(affine: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(z) for z in np.linalg.norm(affine[:3, :3], axis=0))


def _check_same_grid(labels: Volume, like: Volume, atol: float) -> None:
    source, other = labels.meta["source"], like.meta.get("source", "the given image")
    if labels.data.shape != like.data.shape:
        raise VolumeReadError(source, f"label grid {labels.data.shape} does not match image {other} "
                                      f"grid {like.data.shape} (canonical RAS shapes)")
    difference = float(np.abs(labels.affine - like.affine).max())
    if difference > atol:
        raise VolumeReadError(source, f"label affine differs from image {other} by up to {difference:.4g} mm "
                                      f"(tolerance {atol} mm)")
