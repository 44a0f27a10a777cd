"""Intensity normalisation of volumes onto [0, 1]: fixed HU windows for CT, percentiles for MR.

CT numbers are calibrated, so a window means the same tissue in every scan; MR intensities are not, so
each volume is stretched between its own percentiles. Both return the parameters they used, for the
preprocessing spec.
"""

from __future__ import annotations

import numpy as np

CT_WINDOWS = {
    "lung": (-1350.0, 150.0),
    "soft_tissue": (-160.0, 240.0),
    "bone": (-450.0, 1050.0),
    "wide": (-1024.0, 600.0),  # study B's window
}


def ct_window(values: np.ndarray, window: str | tuple[float, float] = "wide") -> tuple[np.ndarray, dict]:
    """Clip Hounsfield units to a named preset (CT_WINDOWS) or a (low, high) pair, mapped onto [0, 1]."""
    if isinstance(window, str):
        if window not in CT_WINDOWS:
            raise ValueError(f"unknown CT window {window!r}; presets: {sorted(CT_WINDOWS)} or a (low, high) pair")
        name, (low, high) = window, CT_WINDOWS[window]
    else:
        name, (low, high) = "custom", (float(window[0]), float(window[1]))
    if high <= low:
        raise ValueError(f"CT window ({low}, {high}) is empty")
    return _stretch(values, low, high), {"method": "ct_window", "window": name, "hu_range": [low, high]}


def mr_percentile_normalise(
    values: np.ndarray, percentiles: tuple[float, float] = (5.0, 95.0)
) -> tuple[np.ndarray, dict]:
    """Clip to the volume's own percentiles (5th-95th by default) and map onto [0, 1]; constant -> zeros."""
    low_pct, high_pct = float(percentiles[0]), float(percentiles[1])
    if not 0.0 <= low_pct < high_pct <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    low, high = (float(v) for v in np.percentile(values, [low_pct, high_pct]))
    params = {"method": "mr_percentile", "percentiles": [low_pct, high_pct], "range": [low, high]}
    if high <= low:  # a constant volume carries no contrast to stretch
        return np.zeros(np.shape(values), dtype=np.float32), params
    return _stretch(values, low, high), params


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    out = np.asarray(values, dtype=np.float32) - np.float32(low)
    out /= np.float32(high - low)
    return np.clip(out, 0.0, 1.0, out=out)
