"""Overlay figures for the report: files written at a known pixel size, byte-identical on a rerun; case picking."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medprobe.overlays import DPI, HEADER_INCHES, PANEL_INCHES, overlay_figure, pick_cases

CLASSES = ["background", "liver", "spleen"]


def case(seed, size=32, dice=None):
    rng = np.random.default_rng(seed)
    truth = np.zeros((size, size), dtype=np.uint8)
    truth[4:20, 6:22] = 1
    truth[22:28, 20:30] = 2
    prediction = np.roll(truth, 2, axis=1)
    entry = {"image": rng.random((size, size)), "truth": truth, "prediction": prediction,
             "name": f"ct_{seed:04d}, slice 3"}
    if dice is not None:
        entry["dice"] = dice
    return entry


def draw(out, cases):
    overlay_figure(cases, out / "overlay.png", out / "overlay.pdf", "demo_ct / dinov2 / seg_linear", CLASSES)
    return (out / "overlay.png").read_bytes(), (out / "overlay.pdf").read_bytes()


def test_files_are_written_at_the_expected_size_and_identical_on_rerun(tmp_path):
    cases = [case(1, dice=0.91), case(2, dice=0.5), case(3)]
    cases[2]["image"] = (cases[2]["image"] * 255).astype(np.uint8)  # uint8 images are accepted too
    png, pdf = draw(tmp_path / "a", cases)
    assert pdf.startswith(b"%PDF") and png.startswith(b"\x89PNG")
    with Image.open(tmp_path / "a" / "overlay.png") as image:
        width, height = image.size
    legend = 0.15 + 0.16 * 1  # two named classes: one legend row
    assert width == round(3 * PANEL_INCHES * DPI)
    assert height == round((3 * PANEL_INCHES + HEADER_INCHES + legend) * DPI)
    assert draw(tmp_path / "b", cases) == (png, pdf)


def test_overlay_shows_the_label_colours(tmp_path):
    draw(tmp_path, [case(1)])
    pixels = np.asarray(Image.open(tmp_path / "overlay.png").convert("RGB")).astype(int)
    third = pixels.shape[1] // 3
    image_panel, truth_panel = pixels[:, :third], pixels[:, third:2 * third]
    # The plain image panel is grey; the truth panel has tinted (non-grey) pixels where the organs lie.
    assert np.ptp(image_panel, axis=2).max() < 10
    assert (np.ptp(truth_panel, axis=2) > 40).sum() > 100


def test_labels_without_names_are_refused(tmp_path):
    bad = case(1)
    bad["prediction"] = np.full_like(bad["prediction"], 5)
    with pytest.raises(ValueError, match="label 5 has no name"):
        draw(tmp_path, [bad])


def test_mismatched_shapes_are_refused(tmp_path):
    bad = case(1)
    bad["truth"] = bad["truth"][:10]
    with pytest.raises(ValueError, match="one shape"):
        draw(tmp_path, [bad])


def test_pick_cases_spans_best_to_worst():
    dice = pd.Series([0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4, np.nan],
                     index=[f"ct_{i:04d}" for i in range(10)])
    picked = pick_cases(dice, n=4)
    # 9 defined values ranked 0.9 .. 0.1; ranks round(linspace(0, 8, 4)) = 0, 3, 5, 8 -> 0.9, 0.6, 0.4, 0.1
    assert picked == ["ct_0001", "ct_0007", "ct_0008", "ct_0002"]
    assert pick_cases(dice.sample(frac=1, random_state=0), n=4) == picked  # input order does not matter
    assert pick_cases(dice, n=3) == ["ct_0001", "ct_0000", "ct_0002"]  # best, median, worst
    assert pick_cases(dice, n=20) == list(dice.dropna().sort_values(ascending=False).index)


def test_pick_cases_breaks_ties_by_case_id():
    dice = pd.Series([0.5, 0.5, 0.5], index=["c", "a", "b"])
    assert pick_cases(dice, n=2) == ["a", "c"]


def test_pick_cases_refuses_nothing_to_pick():
    with pytest.raises(ValueError, match="no case"):
        pick_cases(pd.Series([np.nan], index=["a"]))
