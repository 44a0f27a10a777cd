"""Segmentation overlays for the report: image, truth and prediction side by side for a few chosen cases."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from medprobe.figures import PDF_METADATA, PNG_METADATA  # noqa: E402

ALPHA = 0.45
DPI = 100
PANEL_INCHES = 2.4
HEADER_INCHES = 0.5
LEGEND_COLUMNS = 4
LEGEND_ROW_INCHES = 0.16
# Label k >= 1 gets PALETTE[(k - 1) % len(PALETTE)]: fixed, so a class keeps its colour across figures. The tab10
# hues first (distinct), then tab20's light variants; grey is left out, as it vanishes on a grey-scale image.
PALETTE = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7] + \
    [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i % 2 and i != 15]


def pick_cases(dice_per_case: pd.Series, n: int = 4) -> list:
    """Case ids spread over the Dice ranking, best first and worst last (ties broken by case id), so the overlays
    show the range of outcomes rather than the best ones. Cases with an undefined (NaN) Dice are skipped."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not dice_per_case.index.is_unique:
        raise ValueError("dice_per_case has duplicate case ids")
    ranked = dice_per_case.dropna().sort_index(kind="mergesort").sort_values(ascending=False, kind="mergesort")
    if ranked.empty:
        raise ValueError("no case has a defined Dice to choose from")
    positions = np.round(np.linspace(0, len(ranked) - 1, min(n, len(ranked)))).astype(int)
    return [ranked.index[i] for i in positions]


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    return image / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)


def _colour(labels: np.ndarray) -> np.ndarray:
    """(S, S) label map -> (S, S, 4) RGBA with background fully transparent."""
    rgba = np.zeros(labels.shape + (4,))
    foreground = labels > 0
    rgba[foreground, :3] = np.asarray(PALETTE)[(labels[foreground].astype(int) - 1) % len(PALETTE)]
    rgba[foreground, 3] = ALPHA
    return rgba


def _check(case: dict, class_names: list[str]) -> None:
    image, truth, prediction = (np.asarray(case[key]) for key in ("image", "truth", "prediction"))
    if image.ndim != 2 or truth.shape != image.shape or prediction.shape != image.shape:
        raise ValueError(f"case {case['name']!r}: image, truth and prediction must be 2-D of one shape, got "
                         f"{image.shape}, {truth.shape}, {prediction.shape}")
    top = int(max(truth.max(initial=0), prediction.max(initial=0)))
    if top >= len(class_names):
        raise ValueError(f"case {case['name']!r}: label {top} has no name in class_names ({len(class_names)} names)")


def overlay_figure(cases: list[dict], out_png: str | Path, out_pdf: str | Path, title: str,
                   class_names: list[str]) -> None:
    """Rows of cases; columns image, truth overlay, prediction overlay. Byte-identical files for the same inputs.

    Each case has "image" ((S, S) float in [0, 1] or uint8), "truth" and "prediction" ((S, S) uint8 label maps), "name"
    and optionally "dice". class_names[k] names label k (class_names[0] is the background, never drawn).
    """
    if not cases:
        raise ValueError("overlay_figure needs at least one case")
    for case in cases:
        _check(case, class_names)
    legend_inches = 0.15 + LEGEND_ROW_INCHES * -(-(len(class_names) - 1) // LEGEND_COLUMNS)
    width, height = 3 * PANEL_INCHES, len(cases) * PANEL_INCHES + HEADER_INCHES + legend_inches
    fig, axes = plt.subplots(len(cases), 3, figsize=(width, height), dpi=DPI, squeeze=False)
    fig.subplots_adjust(left=0.08, right=0.98, wspace=0.04, hspace=0.12,
                        top=1 - HEADER_INCHES / height, bottom=legend_inches / height)
    fig.suptitle(title, fontsize=10, y=1 - 0.15 / height)
    for row, case in zip(axes, cases):
        image = _grey(case["image"])
        dice = f" (Dice {case['dice']:.3f})" if case.get("dice") is not None else ""
        for ax, key, label in zip(row, (None, "truth", "prediction"), ("image", "truth", f"prediction{dice}")):
            ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            if key is not None:
                ax.imshow(_colour(np.asarray(case[key])), interpolation="nearest")
            ax.set_title(label, fontsize=8, pad=2)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(case["name"], fontsize=8)
    handles = [Patch(facecolor=PALETTE[(k - 1) % len(PALETTE)], alpha=ALPHA, label=name)
               for k, name in enumerate(class_names) if k > 0]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), LEGEND_COLUMNS), fontsize=7,
                   frameon=False)
    for path, metadata in ((Path(out_png), PNG_METADATA), (Path(out_pdf), PDF_METADATA)):
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, metadata=metadata)
    plt.close(fig)
