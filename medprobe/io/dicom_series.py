"""Assemble a DICOM series (one file per slice) into a canonical Volume.

File order and InstanceNumber are not geometry: slices are sorted along the slice normal by
ImagePositionPatient, and a series whose slices disagree on orientation, size or pixel spacing, or whose
positions leave a gap or repeat, is refused with the offending files named, because stacking it anyway
would give a volume with the wrong shape or spacing and no visible sign of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut

from medprobe.io.volumes import Volume, VolumeReadError, canonical_volume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
COSINE_ATOL = 1e-4
DUPLICATE_MM = 1e-3


class DicomSeriesError(VolumeReadError):
    """Files that do not form one consistent, gap-free DICOM series."""


def read_dicom_series(
    source: str | Path | Iterable[str | Path], series_uid: str | None = None, spacing_tolerance: float = 0.05
) -> Volume:
    """Read a folder (its files, not subfolders) or a list of slice files as one series.

    Pixel values go through the modality LUT (RescaleSlope/Intercept: Hounsfield units for CT). Input
    holding several series needs `series_uid`. Slice spacing comes from consecutive positions along the
    normal and may vary by `spacing_tolerance` (relative to the median) before the series is refused;
    a single slice takes SpacingBetweenSlices or SliceThickness.
    """
    name, files = _files(source)
    slices = _select_series(name, [(path, _read(path)) for path in files], series_uid)
    row, col, pixel_spacing = _check_consistent(name, slices)
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    positions = [_floats(path, ds, "ImagePositionPatient", 3) for path, ds in slices]
    order = np.argsort([p @ normal for p in positions], kind="stable")
    slices = [slices[i] for i in order]
    positions = np.array([positions[i] for i in order])
    step, slice_spacing, spacing_source = _slice_step(name, slices, positions, normal, spacing_tolerance)

    pixels = np.stack([_modality_values(path, ds).T for path, ds in slices], axis=-1)  # (columns, rows, slices)
    lps = np.eye(4)
    lps[:3, 0] = row * pixel_spacing[1]  # PixelSpacing is (between rows, between columns)
    lps[:3, 1] = col * pixel_spacing[0]
    lps[:3, 2] = step
    lps[:3, 3] = positions[0]
    first = slices[0][1]
    meta = {
        "source": name,
        "source_format": "dicom",
        "series_uid": str(first.SeriesInstanceUID),
        "modality": str(first.get("Modality", "")) or None,
        "files": [str(path) for path, _ in slices],
        "data_dtype": first.pixel_array.dtype.name,
        "rescale_slopes": sorted({float(ds.get("RescaleSlope", 1.0)) for _, ds in slices}),
        "rescale_intercepts": sorted({float(ds.get("RescaleIntercept", 0.0)) for _, ds in slices}),
        "slice_spacing": slice_spacing,
        "slice_spacing_source": spacing_source,
    }
    return canonical_volume(nib.Nifti1Image(pixels, LPS_TO_RAS @ lps), name, meta)


def _files(source) -> tuple[str, list[Path]]:
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        files = sorted(p for p in Path(source).iterdir() if p.is_file() and not p.name.startswith("."))
        name = str(source)
    else:
        files = [Path(p) for p in ([source] if isinstance(source, (str, Path)) else source)]
        name = str(Path(files[0]).parent) if files else str(source)
    if not files:
        raise DicomSeriesError(name, "no files to read as a DICOM series")
    return name, files


def _read(path: Path) -> pydicom.Dataset:
    if not path.is_file():
        raise DicomSeriesError(path, "file not found")
    try:
        return pydicom.dcmread(path, defer_size="4 KB")  # pixel data is read only for the chosen series
    except Exception as exc:  # pydicom signals bad or truncated files with many exception types
        raise DicomSeriesError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from exc


def _select_series(name: str, slices: list, series_uid: str | None) -> list:
    by_uid = defaultdict(list)
    for path, ds in slices:
        if "SeriesInstanceUID" not in ds:
            raise DicomSeriesError(path, "has no SeriesInstanceUID")
        by_uid[str(ds.SeriesInstanceUID)].append((path, ds))
    listing = ", ".join(f"{uid} ({len(members)} files)" for uid, members in sorted(by_uid.items()))
    if series_uid is not None:
        if series_uid not in by_uid:
            raise DicomSeriesError(name, f"series {series_uid} not found; the input holds {listing}")
        return by_uid[series_uid]
    if len(by_uid) > 1:
        raise DicomSeriesError(name, f"input mixes {len(by_uid)} series: {listing}; pass series_uid to pick one")
    return slices


def _check_consistent(name: str, slices: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shared row and column direction cosines and pixel spacing, after checking every slice has them."""
    reference_path, reference = slices[0]
    for path, ds in slices:
        if "PixelData" not in ds:
            raise DicomSeriesError(path, "has no pixel data (not an image)")
        if int(ds.get("NumberOfFrames") or 1) > 1 or int(ds.get("SamplesPerPixel", 1)) != 1:
            raise DicomSeriesError(path, "is multi-frame or colour; a series must be single-frame grayscale slices")
    iop = _floats(reference_path, reference, "ImageOrientationPatient", 6)
    spacing = _floats(reference_path, reference, "PixelSpacing", 2)
    size = (int(reference.Rows), int(reference.Columns))
    for path, ds in slices[1:]:
        other = _floats(path, ds, "ImageOrientationPatient", 6)
        if not np.allclose(other, iop, atol=COSINE_ATOL):
            raise DicomSeriesError(name, f"mixed orientation: {reference_path} has ImageOrientationPatient "
                                         f"{iop.tolist()} but {path} has {other.tolist()}")
        if (int(ds.Rows), int(ds.Columns)) != size:
            raise DicomSeriesError(name, f"mixed slice sizes: {reference_path} is {size[0]}x{size[1]} "
                                         f"but {path} is {ds.Rows}x{ds.Columns}")
        if not np.allclose(_floats(path, ds, "PixelSpacing", 2), spacing, rtol=1e-4):
            raise DicomSeriesError(name, f"mixed pixel spacing: {reference_path} has {spacing.tolist()} mm "
                                         f"but {path} has {list(map(float, ds.PixelSpacing))} mm")
    return iop[:3], iop[3:], spacing


def _slice_step(name: str, slices: list, positions: np.ndarray, normal: np.ndarray, tolerance: float):
    """The voxel step between slices (a vector: gantry tilt shears it off the normal) and the spacing."""
    if len(slices) == 1:
        path, ds = slices[0]
        for keyword in ("SpacingBetweenSlices", "SliceThickness"):
            if ds.get(keyword):
                spacing = float(ds.get(keyword))
                return normal * spacing, spacing, keyword
        raise DicomSeriesError(path, "single slice without SpacingBetweenSlices or SliceThickness")
    gaps = np.diff(positions @ normal)
    duplicates = np.flatnonzero(gaps < DUPLICATE_MM)
    if duplicates.size:
        i = int(duplicates[0])
        raise DicomSeriesError(name, f"duplicate slice position {positions[i].tolist()}: "
                                     f"{slices[i][0]} and {slices[i + 1][0]}")
    median = float(np.median(gaps))
    worst = int(np.argmax(gaps) if gaps.max() - median >= median - gaps.min() else np.argmin(gaps))
    if abs(gaps[worst] - median) > tolerance * median:
        seen = ", ".join(f"{g:.4g}" for g in np.unique(gaps.round(4)))
        raise DicomSeriesError(name, f"non-uniform slice spacing: {gaps[worst]:.4g} mm between {slices[worst][0]} "
                                     f"and {slices[worst + 1][0]} (spacings seen: {seen} mm; median {median:.4g} mm); "
                                     f"a slice is missing or the series mixes acquisitions")
    step = (positions[-1] - positions[0]) / (len(slices) - 1)
    off_line = np.linalg.norm(positions - (positions[0] + np.outer(np.arange(len(slices)), step)), axis=1)
    if off_line.max() > tolerance * np.linalg.norm(step):
        path = slices[int(np.argmax(off_line))][0]
        raise DicomSeriesError(name, f"slice positions do not lie on a line: {path} is {off_line.max():.4g} mm off")
    return step, float((positions[-1] - positions[0]) @ normal / (len(slices) - 1)), "positions"


def _modality_values(path: Path, ds: pydicom.Dataset) -> np.ndarray:
    try:
        stored = ds.pixel_array
    except Exception as exc:  # decoder plugins raise a wide, undocumented set of exception types
        raise DicomSeriesError(path, f"pixel data could not be decoded ({type(exc).__name__}: {exc})") from exc
    return apply_modality_lut(stored, ds).astype(np.float32)


def _floats(path: Path, ds: pydicom.Dataset, keyword: str, count: int) -> np.ndarray:
    value = ds.get(keyword)
    try:
        values = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        values = np.array([])
    if values.shape != (count,):
        raise DicomSeriesError(path, f"{keyword} missing or malformed ({value!r}); needed to place the slice")
    return values
