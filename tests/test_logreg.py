import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from medprobe.probes.logreg import c_grid, select_and_predict_logreg

GRID = c_grid(1e-4, 1e2, 13)


def _data(seed, n=150, dims=30, n_labels=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dims))
    y = ((x[:, :n_labels] + x[:, n_labels : 2 * n_labels] * 0.5 + rng.standard_normal((n, n_labels))) > 0.3).astype(int)
    return x, y


def _sklearn_reference(train_x, train_y, val_x, val_y, test_x, cs):
    """One label, written directly with sklearn: warm-started sweep on train, AUROC on val, refit on train+val."""
    scaler = StandardScaler().fit(train_x)
    model = LogisticRegression(C=cs[0], max_iter=200, warm_start=True, random_state=0)
    val_auroc = []
    for c in cs:
        model.set_params(C=c).fit(scaler.transform(train_x), train_y)
        val_auroc.append(roc_auc_score(val_y, model.predict_proba(scaler.transform(val_x))[:, 1]))
    chosen = cs[int(np.argmax(val_auroc))]
    all_x, all_y = np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
    final_scaler = StandardScaler().fit(all_x)
    final = LogisticRegression(C=chosen, max_iter=200, random_state=0).fit(final_scaler.transform(all_x), all_y)
    return chosen, val_auroc, final.predict_proba(final_scaler.transform(test_x))[:, 1]


def test_c_grid_is_log_spaced():
    grid = c_grid(1e-6, 1e5, 45)
    assert len(grid) == 45 and grid[0] == pytest.approx(1e-6) and grid[-1] == pytest.approx(1e5)
    np.testing.assert_allclose(np.diff(np.log10(grid)), 0.25)
    with pytest.raises(ValueError):
        c_grid(0, 1, 3)


def test_multilabel_matches_sklearn_per_label():
    x, y = _data(0)
    splits = (x[:80], y[:80], x[80:115], y[80:115], x[115:])
    scores, info = select_and_predict_logreg(*splits, c_grid=GRID[::-1], task_type="multilabel", max_iter=200, seed=0)
    assert scores.shape == (35, 3) and scores.dtype == np.float64
    assert info["c_grid"] == GRID.tolist()  # swept in ascending order whatever order it is given in
    for label in range(3):
        chosen, val_auroc, test_probability = _sklearn_reference(
            x[:80], y[:80, label], x[80:115], y[80:115, label], x[115:], GRID
        )
        assert info["c"][label] == chosen
        np.testing.assert_allclose(info["val_auroc"][label], val_auroc, atol=1e-12)
        np.testing.assert_allclose(scores[:, label], test_probability, atol=1e-12)


def test_multiclass_matches_sklearn():
    x, y = _data(1)
    classes = y[:, 0] + y[:, 1]  # 0, 1, 2
    scores, info = select_and_predict_logreg(
        x[:80],
        classes[:80],
        x[80:115],
        classes[80:115],
        x[115:],
        c_grid=GRID,
        task_type="multiclass",
        max_iter=200,
        seed=0,
    )
    scaler = StandardScaler().fit(x[:80])
    model = LogisticRegression(max_iter=200, warm_start=True)
    val_auroc = []
    for c in GRID:
        model.set_params(C=c).fit(scaler.transform(x[:80]), classes[:80])
        val_auroc.append(
            roc_auc_score(classes[80:115], model.predict_proba(scaler.transform(x[80:115])), multi_class="ovr")
        )
    chosen = GRID[int(np.argmax(val_auroc))]
    final_scaler = StandardScaler().fit(x[:115])
    final = LogisticRegression(C=chosen, max_iter=200).fit(final_scaler.transform(x[:115]), classes[:115])
    assert info["c"] == [chosen]
    np.testing.assert_allclose(info["val_auroc"][0], val_auroc, atol=1e-12)
    np.testing.assert_allclose(scores, final.predict_proba(final_scaler.transform(x[115:])), atol=1e-12)


def test_c_is_chosen_on_validation_never_on_test():
    x, y = _data(2, n=200, dims=60, n_labels=1)
    train, val, test = slice(0, 60), slice(60, 130), slice(130, 200)
    y[test] = 1 - y[test]  # test labels inverted: the C that is worst on test looks best to test AUROC
    # Precondition: on this data, choosing by test AUROC would pick a different C than by val AUROC.
    _, val_curve, _ = _sklearn_reference(x[train], y[train, 0], x[val], y[val, 0], x[test], GRID)
    _, test_curve, _ = _sklearn_reference(x[train], y[train, 0], x[test], y[test, 0], x[val], GRID)
    assert np.argmax(val_curve) != np.argmax(test_curve)
    _, info = select_and_predict_logreg(x[train], y[train], x[val], y[val], x[test], GRID, "binary", 200, 0)
    assert info["c"] == [GRID[int(np.argmax(val_curve))]]
    # A different test set changes nothing about the choice.
    _, info_other_test = select_and_predict_logreg(x[train], y[train], x[val], y[val], x[:5], GRID, "binary", 200, 0)
    assert info_other_test == info


def test_deterministic():
    x, y = _data(3)
    args = (x[:80], y[:80], x[80:115], y[80:115], x[115:], GRID, "multilabel", 200, 0)
    first_scores, first_info = select_and_predict_logreg(*args)
    second_scores, second_info = select_and_predict_logreg(*args)
    np.testing.assert_array_equal(first_scores, second_scores)
    assert first_info == second_info


def test_single_class_label_in_train_names_the_label():
    x, y = _data(4)
    y[:80, 1] = 0
    with pytest.raises(ValueError, match="label column 1 has a single class in train"):
        select_and_predict_logreg(x[:80], y[:80], x[80:115], y[80:115], x[115:], GRID, "multilabel", 200, 0)


def test_single_class_label_in_val_is_a_clear_error():
    x, y = _data(5)
    y[80:115, 2] = 1
    with pytest.raises(ValueError, match="label column 2 has a single class in validation"):
        select_and_predict_logreg(x[:80], y[:80], x[80:115], y[80:115], x[115:], GRID, "multilabel", 200, 0)


def test_convergence_warnings_are_counted_not_shown():
    x, y = _data(6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, info = select_and_predict_logreg(x[:80], y[:80], x[80:115], y[80:115], x[115:], GRID, "multilabel", 1, 0)
    assert info["n_convergence_warnings"] > 0
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]


def test_missing_labels_fit_on_known_rows_only_and_score_every_test_row():
    x, y = _data(7)
    rng = np.random.default_rng(7)
    y[:115, :2][rng.random((115, 2)) < [0.3, 0.5]] = -1  # train and val rows; label 2 stays complete
    train, val, test = slice(0, 80), slice(80, 115), slice(115, 150)
    scores, info = select_and_predict_logreg(x[train], y[train], x[val], y[val], x[test], GRID, "multilabel", 200, 0)
    assert scores.shape == (35, 3) and np.isfinite(scores).all()
    for label in range(3):
        known_train, known_val = y[train, label] != -1, y[val, label] != -1
        chosen, val_auroc, test_probability = _sklearn_reference(
            x[train][known_train], y[train, label][known_train], x[val][known_val], y[val, label][known_val],
            x[test], GRID,
        )
        assert info["c"][label] == chosen
        np.testing.assert_allclose(info["val_auroc"][label], val_auroc, atol=1e-12)
        np.testing.assert_allclose(scores[:, label], test_probability, atol=1e-12)


def test_missing_label_errors():
    x, y = _data(8)

    def fit(labels, task_type="multilabel"):
        train, val = labels[:80], labels[80:115]
        return select_and_predict_logreg(x[:80], train, x[80:115], val, x[115:], GRID, task_type, 200, 0)

    classes = y[:, 0] + y[:, 1]
    classes[3] = -1
    with pytest.raises(ValueError, match="multiclass targets cannot be missing"):
        fit(classes, "multiclass")
    with pytest.raises(ValueError, match="must be 0/1, or -1"):
        fit(np.where(np.arange(150)[:, None] == 5, 2, y))
    only_negatives_known = y.copy()
    only_negatives_known[:80, 1][y[:80, 1] == 1] = -1
    with pytest.raises(ValueError, match="label column 1 has a single class in train"):
        fit(only_negatives_known)
    none_known_in_val = y.copy()
    none_known_in_val[80:115, 1] = -1
    with pytest.raises(ValueError, match="label column 1 has a single class in validation"):
        fit(none_known_in_val)
