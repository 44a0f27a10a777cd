"""Read single-frame grayscale DICOM images into display-ready float arrays.

Every image goes through the same chain a viewer would apply (modality LUT, VOI window,
MONOCHROME1 inversion), so features extracted downstream do not depend on how a given
archive happened to store its pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_windowing

from medprobe.io.images import Image, ImageReadError, window

GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
VOI_FALLBACKS = ("percentile", "minmax")


class DicomReadError(ImageReadError):
    """A DICOM file that cannot become a 2-D grayscale image."""


def read_dicom_image(
    path: str | Path,
    voi_fallback: str = "percentile",
    percentiles: tuple[float, float] = (0.5, 99.5),
) -> Image:
    """Read `path` and apply modality LUT, VOI windowing and MONOCHROME1 inversion.

    The window comes from WindowCenter/WindowWidth (first value) when present; otherwise
    `voi_fallback` decides: "percentile" clips to `percentiles` of the modality values (robust
    to a few hot pixels), "minmax" to their full range. Anything other than a readable
    single-frame grayscale image raises DicomReadError.
    """
    if voi_fallback not in VOI_FALLBACKS:
        raise ValueError(f"voi_fallback must be one of {VOI_FALLBACKS}, got {voi_fallback!r}")
    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except OSError:
        raise
    except Exception as exc:  # pydicom signals bad or truncated files with many exception types
        raise DicomReadError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from exc

    try:
        return _to_image(path, ds, voi_fallback, percentiles)
    except DicomReadError:
        raise
    except (ValueError, TypeError, AttributeError) as exc:  # malformed values, e.g. NumberOfFrames "1A"
        raise DicomReadError(path, f"invalid or inconsistent header ({type(exc).__name__}: {exc})") from exc


def _to_image(
    path: Path, ds: pydicom.Dataset, voi_fallback: str, percentiles: tuple[float, float]
) -> Image:
    _check_single_frame_grayscale(path, ds)
    try:
        stored = ds.pixel_array
    except Exception as exc:  # decoder plugins raise a wide, undocumented set of exception types
        raise DicomReadError(
            path, f"pixel data could not be decoded ({_transfer_syntax(ds)}): {type(exc).__name__}: {exc}"
        ) from exc
    if stored.ndim != 2:
        raise DicomReadError(path, f"pixel array has shape {stored.shape}; expected a 2-D grayscale image")

    values = apply_modality_lut(stored, ds).astype(np.float64)
    window_center = _first_float(ds, "WindowCenter")
    window_width = _first_float(ds, "WindowWidth")
    if window_center is not None and window_width is not None:
        pixels = _window_from_tags(path, values, ds)
        voi_source = "tags"
    else:
        pixels = window(values, voi_fallback, percentiles)
        voi_source = voi_fallback
    if ds.PhotometricInterpretation == "MONOCHROME1":
        pixels = 1.0 - pixels

    meta = {
        "photometric": str(ds.PhotometricInterpretation),
        "bits_stored": int(ds.BitsStored),
        "rows": int(ds.Rows),
        "cols": int(ds.Columns),
        "pixel_spacing": _pixel_spacing(ds),
        "rescale_slope": _first_float(ds, "RescaleSlope"),
        "rescale_intercept": _first_float(ds, "RescaleIntercept"),
        "window_center": window_center,
        "window_width": window_width,
        "voi_source": voi_source,
        "modality": str(ds.get("Modality", "")) or None,
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")) or None,
    }
    return Image(pixels=pixels.astype(np.float32), meta=meta)


def _check_single_frame_grayscale(path: Path, ds: pydicom.Dataset) -> None:
    if "PixelData" not in ds:
        sop_class = ds.get("SOPClassUID")
        kind = f"SOP class {sop_class.name}" if sop_class else "no SOP Class UID"
        raise DicomReadError(path, f"has no pixel data (not an image: {kind})")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in GRAYSCALE or ds.get("SamplesPerPixel", 1) != 1:
        raise DicomReadError(
            path,
            f"photometric interpretation {photometric or 'missing'} is not grayscale; "
            f"only MONOCHROME1/MONOCHROME2 images are supported",
        )
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise DicomReadError(
            path, f"is multi-frame ({frames} frames); only single-frame images are supported"
        )


def _window_from_tags(path: Path, values: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """Window with pydicom, then map its output range (set by BitsStored and rescale) onto [0, 1]."""
    try:
        windowed = apply_windowing(values, ds)
        # Pushing -inf/+inf through the same function yields exactly the output range it used,
        # also for a negative rescale slope, where that range runs backwards.
        low, high = apply_windowing(np.array([-np.inf, np.inf]), ds)
    except ValueError as exc:
        raise DicomReadError(path, f"invalid VOI window tags: {exc}") from exc
    return np.clip((windowed - low) / (high - low), 0.0, 1.0)


def _first_float(ds: pydicom.Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    if isinstance(value, MultiValue):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    return float(value)


def _pixel_spacing(ds: pydicom.Dataset) -> list[float] | None:
    spacing = ds.get("PixelSpacing")
    if not spacing or len(spacing) != 2:
        return None
    return [float(spacing[0]), float(spacing[1])]


def _transfer_syntax(ds: pydicom.Dataset) -> str:
    syntax = ds.file_meta.get("TransferSyntaxUID")
    return syntax.name if syntax else "unknown transfer syntax"
