import math
import warnings

import numpy as np
import pandas as pd
import pytest

from medprobe.evaluate.segmentation import segmentation_scores, summarize_cases


def test_overlapping_squares_have_exact_dice_and_jaccard():
    truth, pred = np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8)
    truth[2:8, 2:8] = 1  # 36 pixels
    pred[5:11, 5:11] = 1  # 36 pixels, overlap rows 5..7 x cols 5..7 = 9
    scores = segmentation_scores(pred, truth, [1])[1]
    assert scores["dice"] == pytest.approx(2 * 9 / (36 + 36))
    assert scores["jaccard"] == pytest.approx(9 / (36 + 36 - 9))


def test_hd95_between_two_points_uses_anisotropic_spacing():
    truth, pred = np.zeros((12, 6, 6), np.int16), np.zeros((12, 6, 6), np.int16)
    truth[1, 2, 3] = 4
    pred[9, 2, 4] = 4  # 8 voxels along axis 0, 1 along axis 2
    spacing = (0.5, 2.0, 3.0)
    assert segmentation_scores(pred, truth, [4], spacing=spacing)[4]["hd95"] == pytest.approx(5.0)  # (4, 0, 3) mm
    assert segmentation_scores(pred, truth, [4])[4]["hd95"] == pytest.approx(math.sqrt(65))  # voxels


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_hd95_of_a_shifted_cube_is_the_shift_in_mm(axis, k):
    spacing = (0.7, 1.5, 2.5)
    truth = np.zeros((24, 24, 24), np.uint8)
    truth[6:14, 6:14, 6:14] = 2
    pred = np.roll(truth, k, axis=axis)
    scores = segmentation_scores(pred, truth, [2], spacing=spacing)[2]
    assert scores["hd95"] == pytest.approx(k * spacing[axis], rel=1e-6)
    assert scores["dice"] == pytest.approx((8 - k) / 8)  # overlap (8 - k) * 8 * 8 of two 8^3 cubes


def test_dice_and_jaccard_match_numpy_on_random_label_maps():
    rng = np.random.default_rng(3)
    for shape in [(32, 40), (16, 18, 12)]:
        truth = rng.integers(0, 4, size=shape)
        pred = np.where(rng.random(shape) < 0.6, truth, rng.integers(0, 4, size=shape))
        scores = segmentation_scores(pred, truth, [0, 1, 2, 3], spacing=(1.0,) * len(shape))
        for label in range(4):
            a, b = pred == label, truth == label
            intersection = np.logical_and(a, b).sum()
            assert scores[label]["dice"] == pytest.approx(2 * intersection / (a.sum() + b.sum()), abs=1e-6)
            assert scores[label]["jaccard"] == pytest.approx(intersection / np.logical_or(a, b).sum(), abs=1e-6)
            assert scores[label]["hd95"] >= 0


def test_empty_labels_follow_the_stated_convention_without_warnings():
    shape, spacing = (10, 20, 5), (1.0, 0.5, 2.0)
    diagonal = math.sqrt(10**2 + 10**2 + 10**2)  # (10 x 1, 20 x 0.5, 5 x 2) mm
    truth, pred = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    truth[2:5, 2:5, 1:3] = 1  # label 1 only in truth
    pred[6:8, 6:9, 2:4] = 2  # label 2 only in prediction; label 3 in neither
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = segmentation_scores(pred, truth, [1, 2, 3], spacing=spacing)
    assert scores[3] == {"dice": 1.0, "jaccard": 1.0, "hd95": 0.0}
    for label in (1, 2):
        assert scores[label]["dice"] == 0.0 and scores[label]["jaccard"] == 0.0
        assert scores[label]["hd95"] == pytest.approx(diagonal)


def test_bad_inputs_are_refused():
    mask = np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        segmentation_scores(mask, np.zeros((8, 9), np.uint8), [1])
    with pytest.raises(ValueError, match="integer label map"):
        segmentation_scores(mask.astype(np.float32), mask, [1])
    with pytest.raises(ValueError, match="2-D or 3-D"):
        segmentation_scores(np.zeros((2, 2, 2, 2), np.uint8), np.zeros((2, 2, 2, 2), np.uint8), [1])
    with pytest.raises(ValueError, match="spacing"):
        segmentation_scores(mask, mask, [1], spacing=(1.0, 0.0))
    with pytest.raises(ValueError, match="spacing"):
        segmentation_scores(mask, mask, [1], spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="labels"):
        segmentation_scores(mask, mask, [])


def _cases(values: dict, patients: dict) -> pd.DataFrame:
    """values: case -> {label: (dice, jaccard, hd95)}."""
    rows = [
        {"case_id": case, "patient_id": patients[case], "label": label, "dice": d, "jaccard": j, "hd95": h}
        for case, per_label in values.items()
        for label, (d, j, h) in per_label.items()
    ]
    return pd.DataFrame(rows)


def test_summary_means_macro_and_nan_handling_by_hand():
    table = _cases(
        {
            "a": {1: (0.8, 0.6, 2.0), 2: (0.4, 0.2, 10.0)},
            "b": {1: (0.6, 0.4, 4.0), 2: (np.nan, np.nan, np.nan)},  # label 2 undefined for b
            "c": {1: (1.0, 1.0, 0.0)},  # no row for label 2: undefined too
        },
        {"a": "p1", "b": "p1", "c": "p2"},
    )
    summary = summarize_cases(table, n_bootstrap=0).set_index(["metric", "label"])
    assert summary.loc[("dice", 1), "value"] == pytest.approx(0.8)
    assert summary.loc[("dice", 2), "value"] == pytest.approx(0.4)
    assert summary.loc[("dice", "macro"), "value"] == pytest.approx(0.6)
    assert summary.loc[("hd95", 1), "value"] == pytest.approx(2.0)
    assert summary.loc[("hd95", "macro"), "value"] == pytest.approx(6.0)
    assert summary.loc[("jaccard", 2), "n_cases"] == 1
    assert summary.loc[("jaccard", 1), "n_cases"] == 3
    assert summary.loc[("jaccard", "macro"), "n_cases"] == 3
    assert summary[["ci_low", "ci_high"]].isna().all().all()  # no replicates, no interval
    assert list(summary.reset_index().columns) == ["metric", "label", "value", "ci_low", "ci_high", "n_cases"]


def _random_table(rng, n_patients: int, cases_per_patient: int) -> pd.DataFrame:
    values, patients = {}, {}
    for p in range(n_patients):
        level = rng.uniform(0.3, 0.95)
        for c in range(cases_per_patient):
            case = f"p{p}c{c}"
            patients[case] = f"p{p}"
            dice = {label: level - 0.1 * label for label in (1, 2)}
            values[case] = {label: (dice[label], dice[label] / 2, 10 * (1 - level)) for label in (1, 2)}
    return _cases(values, patients)


def test_bootstrap_is_deterministic_and_matches_a_naive_patient_resampling():
    table = _random_table(np.random.default_rng(0), n_patients=7, cases_per_patient=3)
    first = summarize_cases(table, n_bootstrap=300, ci=0.9, seed=11)
    pd.testing.assert_frame_equal(first, summarize_cases(table, n_bootstrap=300, ci=0.9, seed=11))
    assert not first.equals(summarize_cases(table, n_bootstrap=300, ci=0.9, seed=12))

    # The same patient draws, replayed one replicate at a time with pandas.
    patients = np.unique(table["patient_id"])
    draws = np.random.Generator(np.random.PCG64(11)).integers(0, len(patients), size=(300, len(patients)))
    replicate_means = []
    for draw in draws:
        sample = pd.concat([table[table["patient_id"] == patients[i]] for i in draw])
        per_label = sample.groupby("label")["dice"].mean()
        replicate_means.append((per_label[1], per_label.mean()))
    replicate_means = np.array(replicate_means)
    rows = first.set_index(["metric", "label"])
    for column, label in ((0, 1), (1, "macro")):
        low, high = np.percentile(replicate_means[:, column], [5, 95])
        assert rows.loc[("dice", label), "ci_low"] == pytest.approx(low)
        assert rows.loc[("dice", label), "ci_high"] == pytest.approx(high)


def test_bootstrap_ci_covers_the_true_mean_at_about_its_level():
    rng = np.random.default_rng(5)
    covered = 0
    trials = 200
    for _ in range(trials):
        dice = rng.beta(20, 5, size=80)  # true mean 0.8
        table = pd.DataFrame({"case_id": np.arange(80), "patient_id": np.arange(80), "label": 1,
                              "dice": dice, "jaccard": dice / (2 - dice), "hd95": 1 - dice})
        row = summarize_cases(table, n_bootstrap=400, ci=0.9, seed=int(rng.integers(1 << 30))).iloc[0]
        assert row["metric"] == "dice" and row["ci_low"] <= row["value"] <= row["ci_high"]
        covered += row["ci_low"] <= 0.8 <= row["ci_high"]
    assert 0.82 <= covered / trials <= 0.97  # nominal 0.9; 0.895 with these seeds


def test_patient_clusters_widen_the_interval():
    table = _random_table(np.random.default_rng(1), n_patients=20, cases_per_patient=3)
    clustered = summarize_cases(table, n_bootstrap=2000, seed=0).set_index(["metric", "label"])
    independent = summarize_cases(table.assign(patient_id=table["case_id"]), n_bootstrap=2000, seed=0)
    independent = independent.set_index(["metric", "label"])
    width = lambda frame: frame.loc[("dice", "macro"), "ci_high"] - frame.loc[("dice", "macro"), "ci_low"]  # noqa: E731
    assert width(clustered) > 1.4 * width(independent)  # sqrt(3) in expectation for identical cases per patient


def test_summary_refuses_bad_tables():
    table = _random_table(np.random.default_rng(2), n_patients=3, cases_per_patient=2)
    with pytest.raises(ValueError, match="lacks columns"):
        summarize_cases(table.drop(columns="hd95"), n_bootstrap=10)
    with pytest.raises(ValueError, match="more than one row"):
        summarize_cases(pd.concat([table, table.iloc[:1]]), n_bootstrap=10)
    with pytest.raises(ValueError, match="more than one patient"):
        summarize_cases(table.assign(patient_id=np.arange(len(table))), n_bootstrap=10)
    with pytest.raises(ValueError, match="infinite"):
        summarize_cases(table.assign(hd95=np.inf), n_bootstrap=10)
    with pytest.raises(ValueError, match="ci"):
        summarize_cases(table, n_bootstrap=10, ci=1.0)


def blobs(shape, n_labels, seed):
    """Integer label maps of random boxes, some touching the border, some labels absent."""
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, dtype=np.int64)
    for label in rng.choice(np.arange(1, n_labels + 1), size=rng.integers(1, n_labels + 1), replace=False):
        for _ in range(rng.integers(1, 4)):
            low = [rng.integers(0, s) for s in shape]
            high = [min(s, lo + rng.integers(1, max(2, s // 2))) for lo, s in zip(low, shape)]
            out[tuple(slice(lo, hi) for lo, hi in zip(low, high))] = label
    return out


@pytest.mark.parametrize("shape, spacing", [((48, 40), None), ((40, 37), (0.7, 1.3)), ((12, 30, 26), (2.5, 0.8, 0.8)),
                                            ((9, 17, 21), (1.0, 1.0, 1.0))])
def test_dice_jaccard_and_hd95_equal_monais_bit_for_bit(shape, spacing):
    """The scores are MONAI's compute_dice, compute_iou and compute_hausdorff_distance(percentile=95) values
    exactly, with and without spacing, in 2-D and 3-D, on masks touching the border and on labels in only one map."""
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou

    labels = [1, 2, 3, 4]
    n_compared = 0
    for seed in range(25):
        pred, truth = blobs(shape, 4, seed), blobs(shape, 4, 1000 + seed)
        scores = segmentation_scores(pred, truth, labels, spacing=spacing)
        for label in labels:
            p = torch.from_numpy(pred == label)[None, None]
            t = torch.from_numpy(truth == label)[None, None]
            if not (p.any() or t.any()):
                continue
            assert scores[label]["dice"] == float(compute_dice(p.float(), t.float(), ignore_empty=False))
            assert scores[label]["jaccard"] == float(compute_iou(p.float(), t.float(), ignore_empty=False))
            if p.any() and t.any():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    expected = float(compute_hausdorff_distance(p, t, include_background=True, percentile=95,
                                                                spacing=spacing or (1.0,) * len(shape)))
                assert scores[label]["hd95"] == expected
                n_compared += 1
    assert n_compared > 40
