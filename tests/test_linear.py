"""Linear-head probe: heads of a grid train independently in one pass, the lr is chosen on val, and the
head learns what logistic regression learns."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from medprobe.probes.linear import run_linear
from medprobe.probes.registry import get_probe

FAST = {"lrs": [1e-3, 1e-2, 5e-2], "epochs": 30, "batch_size": 32}


def _data(seed, n=150, dims=30, n_labels=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dims)) * rng.uniform(0.1, 50, dims) + rng.uniform(-20, 20, dims)  # scales differ
    z = (x - x.mean(0)) / x.std(0)
    y = ((z[:, :n_labels] + z[:, n_labels : 2 * n_labels] * 0.5 + rng.standard_normal((n, n_labels))) > 0.3)
    return x.astype(np.float32), y.astype(int)


def _splits(n_labels=3):
    x, y = _data(0, n=400, n_labels=n_labels)
    return (x[:200], y[:200]), (x[200:280], y[200:280]), (x[280:], y[280:])


def test_each_head_of_the_grid_is_the_head_trained_alone():
    (train_x, train_y), (val_x, val_y), (test_x, _) = _splits()
    params = {**FAST, "refit": False}
    _, grid = run_linear(train_x, train_y, val_x, val_y, test_x, params, "multilabel", seed=3)
    for lr, val_auroc in zip(FAST["lrs"], grid["val_auroc"]):
        _, alone = run_linear(train_x, train_y, val_x, val_y, test_x, {**params, "lrs": [lr]}, "multilabel", seed=3)
        assert alone["val_auroc"] == [val_auroc]
        if lr == grid["chosen_lr"]:
            assert alone["train_loss"] == grid["train_loss"]
    assert grid["chosen_lr"] == FAST["lrs"][int(np.argmax(grid["val_auroc"]))]
    assert len(set(grid["val_auroc"])) == len(FAST["lrs"])  # the heads really differ


def test_learns_what_logistic_regression_learns_on_separable_signal():
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = _splits(n_labels=1)
    scores, info = run_linear(train_x, train_y, val_x, val_y, test_x, FAST, "binary", seed=0)
    assert scores.shape == (len(test_x), 1) and scores.dtype == np.float64
    all_x, all_y = np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])[:, 0]
    scaler = StandardScaler().fit(all_x)
    reference = LogisticRegression(C=1.0).fit(scaler.transform(all_x), all_y).predict_proba(
        scaler.transform(test_x))[:, 1]
    ours, theirs = roc_auc_score(test_y[:, 0], scores[:, 0]), roc_auc_score(test_y[:, 0], reference)
    assert ours > 0.8 and abs(ours - theirs) < 0.03, (ours, theirs, info["val_auroc"])
    assert info["refit"] and np.isfinite(info["train_loss"]).all() and info["train_loss"][-1] < info["train_loss"][0]


def test_multiclass_scores_are_class_probabilities():
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = _splits(n_labels=2)
    to_class = lambda y: y[:, 0] * 2 + y[:, 1]  # noqa: E731  four classes from two labels
    scores, info = run_linear(train_x, to_class(train_y), val_x, to_class(val_y), test_x, FAST, "multiclass", 0)
    assert scores.shape == (len(test_x), 4)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-9)
    assert (scores.argmax(axis=1) == to_class(test_y)).mean() > 0.45  # chance is about 0.25
    assert np.isfinite(info["val_auroc"]).all()


def test_same_seed_same_bytes_and_the_callers_rng_untouched():
    (train_x, train_y), (val_x, val_y), (test_x, _) = _splits()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first, _ = run_linear(train_x, train_y, val_x, val_y, test_x, FAST, "multilabel", seed=5)
    assert torch.equal(torch.rand(3), expected)
    second, _ = run_linear(train_x, train_y, val_x, val_y, test_x, FAST, "multilabel", seed=5)
    other, _ = run_linear(train_x, train_y, val_x, val_y, test_x, FAST, "multilabel", seed=6)
    assert first.tobytes() == second.tobytes() and not np.array_equal(first, other)


def test_missing_labels_are_left_out_of_training():
    """Hide most negatives' labels: the head must learn the known labels' prevalence, not count -1 as 0."""
    (train_x, train_y), (val_x, val_y), (test_x, _) = _splits(n_labels=1)
    masked = train_y.copy()
    negatives = np.flatnonzero(train_y[:, 0] == 0)
    masked[negatives[: int(0.7 * len(negatives))], 0] = -1
    known = masked[:, 0] != -1
    params = {**FAST, "refit": False}
    scores, info = run_linear(train_x, masked, val_x, val_y, train_x, params, "binary", seed=0)
    assert np.isfinite(scores).all() and min(info["val_auroc"]) > 0.6
    assert abs(scores[known, 0].mean() - masked[known, 0].mean()) < 0.1, (scores[known].mean(),
                                                                           masked[known, 0].mean(), train_y.mean())
    assert masked[known, 0].mean() - train_y.mean() > 0.2  # the two readings differ clearly


def test_a_diverging_lr_is_recorded_and_never_chosen():
    (train_x, train_y), (val_x, val_y), (test_x, _) = _splits()
    params = {**FAST, "lrs": [1e-3, 1e38], "refit": False}  # float32 weights overflow at the second lr
    _, info = run_linear(train_x, train_y, val_x, val_y, test_x, params, "multilabel", seed=0)
    assert np.isnan(info["val_auroc"][1]) and info["chosen_lr"] == 1e-3


@pytest.mark.parametrize("params, match", [({"lr": 0.1}, "unknown linear-head parameters"),
                                           ({"lrs": []}, "non-empty list"), ({"lrs": [0.1, -1]}, "positive"),
                                           ({"epochs": 0}, "epochs must be >= 1")])
def test_bad_parameters_name_the_key(params, match):
    (train_x, train_y), (val_x, val_y), (test_x, _) = _splits()
    with pytest.raises(ValueError, match=match):
        run_linear(train_x, train_y, val_x, val_y, test_x, params, "multilabel", seed=0)


def test_one_class_validation_is_an_error_before_training():
    (train_x, train_y), (val_x, _), (test_x, _) = _splits()
    with pytest.raises(ValueError, match="validation macro AUROC is undefined"):
        run_linear(train_x, train_y, val_x, np.zeros((len(val_x), 3), int), test_x, FAST, "multilabel", seed=0)


def test_registered_as_a_vector_probe_that_drops_the_features_key():
    entry = get_probe("linear")
    (train_x, train_y), (val_x, val_y), (test_x, _) = _splits()
    scores, _ = entry["run"](train_x, train_y, val_x, val_y, test_x, {**FAST, "features": "all"}, "multilabel", 0)
    assert entry["kind"] == "vector" and entry["torch"] and scores.shape == (len(test_x), 3)
