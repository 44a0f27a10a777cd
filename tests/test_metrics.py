import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

from medprobe.evaluate.metrics import (
    _weighted_auroc,
    auroc_per_label,
    bootstrap_ci,
    class_indices,
    compute_metrics,
    macro_auroc,
)


def _sklearn_binary_metrics(y_true, y_score, threshold):
    """Per-label sklearn metrics at the threshold, averaged over labels: the documented definition."""
    predicted = (y_score >= threshold).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns for one-class labels; the values are what we compare
        return {
            "accuracy": np.mean([accuracy_score(y_true[:, j], predicted[:, j]) for j in range(y_true.shape[1])]),
            "balanced_accuracy": np.mean(
                [balanced_accuracy_score(y_true[:, j], predicted[:, j]) for j in range(y_true.shape[1])]
            ),
            "f1": np.mean([f1_score(y_true[:, j], predicted[:, j], zero_division=0) for j in range(y_true.shape[1])]),
        }


@pytest.fixture
def multilabel_data():
    rng = np.random.default_rng(0)
    y_true = (rng.random((90, 4)) < [0.2, 0.5, 0.7, 0.4]).astype(int)
    y_score = np.round(np.clip(0.3 * y_true + rng.random((90, 4)) * 0.7, 0, 1), 1)  # rounded: many ties
    return y_true, y_score


def test_multilabel_matches_sklearn(multilabel_data):
    y_true, y_score = multilabel_data
    metrics = compute_metrics(y_true, y_score, "multilabel", ["a", "b", "c", "d"], threshold=0.5)
    per_label = roc_auc_score(y_true, y_score, average=None)
    for j, name in enumerate("abcd"):
        assert metrics[f"auroc[{name}]"] == pytest.approx(per_label[j], abs=1e-12)
    assert metrics["auroc"] == pytest.approx(roc_auc_score(y_true, y_score, average="macro"), abs=1e-12)
    # sklearn's macro F1 on a label-indicator matrix is the same per-label average.
    assert metrics["f1"] == pytest.approx(f1_score(y_true, (y_score >= 0.5).astype(int), average="macro"), abs=1e-12)
    for name, value in _sklearn_binary_metrics(y_true, y_score, 0.5).items():
        assert metrics[name] == pytest.approx(value, abs=1e-12)
    assert metrics["n_labels_auroc"] == 4


def test_binary_matches_sklearn_at_other_threshold(multilabel_data):
    y_true, y_score = multilabel_data[0][:, :1], multilabel_data[1][:, :1]
    metrics = compute_metrics(y_true, y_score, "binary", ["finding"], threshold=0.3)
    assert set(metrics) == {"auroc", "accuracy", "balanced_accuracy", "f1", "n_labels_auroc"}
    assert metrics["auroc"] == pytest.approx(roc_auc_score(y_true[:, 0], y_score[:, 0]), abs=1e-12)
    for name, value in _sklearn_binary_metrics(y_true, y_score, 0.3).items():
        assert metrics[name] == pytest.approx(value, abs=1e-12)


def test_multiclass_matches_sklearn():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 3, 80)
    logits = rng.standard_normal((80, 3)) + 1.5 * np.eye(3)[y_true]
    y_score = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    metrics = compute_metrics(y_true, y_score, "multiclass", ["glioma", "meningioma", "pituitary"])
    predicted = y_score.argmax(axis=1)
    assert metrics["auroc"] == pytest.approx(
        roc_auc_score(y_true, y_score, multi_class="ovr", average="macro"), abs=1e-12
    )
    assert metrics["auroc[meningioma]"] == pytest.approx(roc_auc_score(y_true == 1, y_score[:, 1]), abs=1e-12)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, predicted), abs=1e-12)
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, predicted), abs=1e-12)
    assert metrics["f1"] == pytest.approx(f1_score(y_true, predicted, average="macro"), abs=1e-12)


def test_multiclass_with_unpredicted_and_absent_classes_matches_sklearn():
    y_true = np.array([0, 0, 1, 1, 1, 0])
    y_score = np.array(
        [[0.5, 0.2, 0.3], [0.1, 0.2, 0.7], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1]]
    )
    metrics = compute_metrics(y_true, y_score, "multiclass", ["x", "y", "z"])
    predicted = y_score.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, predicted))
    assert metrics["f1"] == pytest.approx(f1_score(y_true, predicted, average="macro"))
    assert np.isnan(metrics["auroc[z]"])  # class z never occurs
    assert metrics["n_labels_auroc"] == 2
    assert metrics["auroc"] == pytest.approx(np.mean([metrics["auroc[x]"], metrics["auroc[y]"]]))


def test_one_class_label_is_nan_and_left_out_of_macro(multilabel_data):
    y_true, y_score = multilabel_data
    y_true = y_true.copy()
    y_true[:, 2] = 1
    metrics = compute_metrics(y_true, y_score, "multilabel", ["a", "b", "c", "d"])
    assert np.isnan(metrics["auroc[c]"])
    assert metrics["n_labels_auroc"] == 3
    assert metrics["auroc"] == pytest.approx(
        np.mean(roc_auc_score(y_true[:, [0, 1, 3]], y_score[:, [0, 1, 3]], average=None))
    )
    assert macro_auroc(y_true, y_score, "multilabel") == pytest.approx(metrics["auroc"])
    for name, value in _sklearn_binary_metrics(y_true, y_score, 0.5).items():
        assert metrics[name] == pytest.approx(value, abs=1e-12)


def test_weighted_auroc_matches_sklearn_sample_weight():
    rng = np.random.default_rng(2)
    positive = rng.random(60) < 0.4
    score = np.round(rng.random(60), 1)
    weights = rng.integers(0, 4, (25, 60)).astype(float)
    ours = _weighted_auroc(positive, score, weights)
    expected = [roc_auc_score(positive, score, sample_weight=w) for w in weights]
    np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="task_type"):
        compute_metrics(np.zeros((3, 1)), np.zeros((3, 1)), "regression", ["a"])
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(np.zeros(3), np.zeros((3, 1)), "binary", ["a"])
    with pytest.raises(ValueError, match="label names"):
        compute_metrics(np.zeros((3, 2)), np.zeros((3, 2)), "multilabel", ["a"])
    with pytest.raises(ValueError, match="NaN"):
        compute_metrics(np.zeros((3, 1)), np.full((3, 1), np.nan), "binary", ["a"])


def _explicit_cluster_bootstrap(y_true, y_score, groups, task_type, names, n_boot, seed, ci):
    """Reference implementation: materialise every replicate by concatenating drawn patients' items."""
    patients, item_patient = np.unique(groups, return_inverse=True)
    draws = np.random.Generator(np.random.PCG64(seed)).integers(0, len(patients), size=(n_boot, len(patients)))
    replicates = {}
    for draw in draws:
        items = np.concatenate([np.flatnonzero(item_patient == patient) for patient in draw])
        for name, value in compute_metrics(y_true[items], y_score[items], task_type, names).items():
            replicates.setdefault(name, []).append(value)
    result = {}
    for name, values in replicates.items():
        if name == "n_labels_auroc":
            continue
        values = np.array(values)
        values = values[np.isfinite(values)]
        low, high = np.percentile(values, [50 * (1 - ci), 100 - 50 * (1 - ci)])
        result[name] = (low, high, len(values))
    return result


@pytest.mark.parametrize("task_type", ["multilabel", "multiclass"])
def test_bootstrap_equals_explicit_patient_resampling(task_type, multilabel_data):
    y_true, y_score = multilabel_data
    if task_type == "multiclass":
        y_true = y_true[:, :3].argmax(axis=1)
        y_score = y_score[:, :3] / y_score[:, :3].sum(axis=1, keepdims=True).clip(1e-9)
        names = ["x", "y", "z"]
    else:
        y_true = y_true.copy()
        y_true[:4, 0] = 1  # label a is rare: some replicates leave it with one class
        y_true[4:, 0] = 0
        names = ["a", "b", "c", "d"]
    groups = np.array([f"patient{i // 3}" for i in range(len(y_true))])  # 3 items per patient
    ours = bootstrap_ci(y_true, y_score, groups, task_type, names, n_boot=200, seed=7, ci=0.9)
    expected = _explicit_cluster_bootstrap(y_true, y_score, groups, task_type, names, 200, 7, 0.9)
    assert ours.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(ours[name][:2], expected[name][:2], atol=1e-12, err_msg=name)
        assert ours[name][2] == expected[name][2], name
    if task_type == "multilabel":
        assert ours["auroc[a]"][2] < 200  # undefined replicates are skipped and counted


def test_bootstrap_seed_determinism_and_point_estimate(multilabel_data):
    y_true, y_score = multilabel_data
    groups = np.arange(len(y_true)) // 2
    names = ["a", "b", "c", "d"]
    first = bootstrap_ci(y_true, y_score, groups, "multilabel", names, n_boot=300, seed=3)
    assert first == bootstrap_ci(y_true, y_score, groups, "multilabel", names, n_boot=300, seed=3)
    assert first != bootstrap_ci(y_true, y_score, groups, "multilabel", names, n_boot=300, seed=4)
    point = compute_metrics(y_true, y_score, "multilabel", names)
    for name, (low, high, n_valid) in first.items():
        assert low <= point[name] <= high, name
        assert n_valid == 300


def test_duplicated_patients_widen_the_interval():
    """Items of a patient are copies: a cluster bootstrap must not treat them as independent evidence."""
    rng = np.random.default_rng(5)
    y_patient = (rng.random((40, 1)) < 0.5).astype(int)
    score_patient = np.clip(0.25 * y_patient + rng.random((40, 1)) * 0.75, 0, 1)
    copies = 8
    y_true, y_score = np.repeat(y_patient, copies, axis=0), np.repeat(score_patient, copies, axis=0)
    patients = np.repeat(np.arange(40), copies)
    cluster = bootstrap_ci(y_true, y_score, patients, "binary", ["p"], n_boot=500, seed=0)["auroc"]
    item_level = bootstrap_ci(y_true, y_score, np.arange(len(y_true)), "binary", ["p"], n_boot=500, seed=0)["auroc"]
    one_per_patient = bootstrap_ci(y_patient, score_patient, np.arange(40), "binary", ["p"], n_boot=500, seed=0)[
        "auroc"
    ]
    width = lambda interval: interval[1] - interval[0]  # noqa: E731
    assert width(cluster) > 2 * width(item_level)
    assert width(cluster) == pytest.approx(width(one_per_patient), rel=0.25)


@pytest.fixture
def missing_data(multilabel_data):
    """multilabel_data with about a quarter of the labels missing (-1), none of the four left with one class."""
    y_true, y_score = multilabel_data
    y_true = np.where(np.random.default_rng(9).random(y_true.shape) < 0.25, -1, y_true)
    return y_true, y_score


def test_missing_labels_are_scored_on_known_rows_only(missing_data):
    y_true, y_score = missing_data
    metrics = compute_metrics(y_true, y_score, "multilabel", ["a", "b", "c", "d"])
    per_label, threshold = [], {}
    for j, name in enumerate("abcd"):
        known = y_true[:, j] != -1
        per_label.append(roc_auc_score(y_true[known, j], y_score[known, j]))
        assert metrics[f"auroc[{name}]"] == pytest.approx(per_label[-1], abs=1e-12)
        for metric, value in _sklearn_binary_metrics(y_true[known, j : j + 1], y_score[known, j : j + 1], 0.5).items():
            threshold.setdefault(metric, []).append(value)
    assert metrics["auroc"] == pytest.approx(np.mean(per_label), abs=1e-12)
    assert macro_auroc(y_true, y_score, "multilabel") == pytest.approx(metrics["auroc"], abs=1e-12)
    np.testing.assert_allclose(auroc_per_label(y_true, y_score, "multilabel"), per_label, atol=1e-12)
    for metric, values in threshold.items():
        assert metrics[metric] == pytest.approx(np.mean(values), abs=1e-12), metric
    assert metrics["n_labels_auroc"] == 4


def test_all_missing_label_is_nan_and_left_out_of_every_average(missing_data):
    y_true, y_score = missing_data
    y_true = y_true.copy()
    y_true[:, 1] = -1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an undefined label is expected, not a numpy warning
        metrics = compute_metrics(y_true, y_score, "multilabel", ["a", "b", "c", "d"])
    rest = compute_metrics(y_true[:, [0, 2, 3]], y_score[:, [0, 2, 3]], "multilabel", ["a", "c", "d"])
    assert np.isnan(metrics["auroc[b]"])
    assert metrics["n_labels_auroc"] == 3
    for name in ("auroc", "accuracy", "balanced_accuracy", "f1"):
        assert metrics[name] == pytest.approx(rest[name], abs=1e-12), name


def test_binary_with_every_label_missing_is_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = compute_metrics(np.full((4, 1), -1), np.full((4, 1), 0.5), "binary", ["p"])
    assert all(np.isnan(metrics[name]) for name in ("auroc", "accuracy", "balanced_accuracy", "f1"))
    assert metrics["n_labels_auroc"] == 0


def test_bootstrap_with_missing_labels_equals_explicit_resampling_and_is_deterministic(missing_data):
    y_true, y_score = missing_data
    y_true = y_true.copy()
    y_true[6:, 0] = -1  # label a is known for two patients only: many replicates have no known item for it
    groups = np.array([f"patient{i // 3}" for i in range(len(y_true))])
    names = ["a", "b", "c", "d"]
    ours = bootstrap_ci(y_true, y_score, groups, "multilabel", names, n_boot=200, seed=7, ci=0.9)
    expected = _explicit_cluster_bootstrap(y_true, y_score, groups, "multilabel", names, 200, 7, 0.9)
    assert ours.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(ours[name][:2], expected[name][:2], atol=1e-12, err_msg=name)
        assert ours[name][2] == expected[name][2], name
    assert ours["auroc[a]"][2] < 200 and ours["auroc"][2] == 200
    assert ours == bootstrap_ci(y_true, y_score, groups, "multilabel", names, n_boot=200, seed=7, ci=0.9)


def test_missing_labels_and_bad_values_raise():
    with pytest.raises(ValueError, match="multiclass targets cannot be missing"):
        compute_metrics(np.array([0, 1, -1]), np.full((3, 2), 0.5), "multiclass", ["x", "y"])
    with pytest.raises(ValueError, match="multiclass targets cannot be missing"):
        class_indices(np.array([[1, 0], [-1, 0]]))
    np.testing.assert_array_equal(class_indices(np.array([[0, 1], [1, 0]])), [1, 0])
    for bad in (2, -2):
        with pytest.raises(ValueError, match="must be 0/1, or -1"):
            compute_metrics(np.array([[0], [1], [bad]]), np.full((3, 1), 0.5), "binary", ["p"])
