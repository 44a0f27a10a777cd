import warnings

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from medprobe.evaluate.metrics import macro_auroc
from medprobe.probes import knn
from medprobe.probes.knn import _l2_normalised, _top_k_neighbours, knn_scores, select_and_predict_knn

# Six reference points in 2-D; their directions fix the cosine similarities exactly.
TRAIN_X = np.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -3.0], [1.0, 1.0], [-1.0, 1.0]])
TRAIN_Y = np.array([[1, 0], [0, 1], [0, 0], [1, 1], [0, 1], [1, 0]])


def test_hand_computed_vote():
    # Query along +x: cosines are 1, 0, -1, 0, 1/sqrt2, -1/sqrt2, so the top 2 are points 0 and 4.
    scores = knn_scores(TRAIN_X, TRAIN_Y, np.array([[5.0, 0.0]]), k=2, temperature=0.5, task_type="multilabel")
    weight_0 = np.exp(1 / 0.5) / (np.exp(1 / 0.5) + np.exp(np.sqrt(0.5) / 0.5))
    np.testing.assert_allclose(scores, [[weight_0, 1 - weight_0]], atol=1e-12)


def test_hand_computed_multiclass_and_tie_break():
    classes = np.array([2, 0, 1, 1, 0, 2])
    # Query along (1, -1): points 0 and 3 tie at cosine 1/sqrt2; k=1 must take the lower index, 0.
    scores = knn_scores(TRAIN_X, classes, np.array([[1.0, -1.0]]), k=1, task_type="multiclass", n_classes=4)
    np.testing.assert_array_equal(scores, [[0.0, 0.0, 1.0, 0.0]])
    # k=3 adds point 4 (cosine 0); points 1, 2 and 5 are below it.
    scores = knn_scores(TRAIN_X, classes, np.array([[1.0, -1.0]]), k=3, temperature=1.0, task_type="multiclass")
    logits = np.array([np.sqrt(0.5), np.sqrt(0.5), 0.0])
    weights = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(scores, [[weights[2], weights[1], weights[0]]], atol=1e-12)


def _brute_force(train_x, train_targets, query_x, k, temperature):
    """Reference: full stable sort of every query's similarities, softmax over the top k, weighted vote."""
    train = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    query = query_x / np.linalg.norm(query_x, axis=1, keepdims=True)
    similarity = query.astype(np.float64) @ train.T.astype(np.float64)
    scores = []
    for row in similarity:
        top = np.argsort(-row, kind="stable")[:k]
        weights = np.exp(row[top] / temperature) / np.exp(row[top] / temperature).sum()
        scores.append(weights @ train_targets[top])
    return np.array(scores)


@pytest.mark.parametrize("chunk_elements", [1 << 24, 50])
def test_matches_brute_force_with_ties_and_chunks(monkeypatch, chunk_elements):
    monkeypatch.setattr(knn, "_CHUNK_ELEMENTS", chunk_elements)
    rng = np.random.default_rng(0)
    # +-1 entries in 4 dims: norms are exactly 2 and every cosine is exact in any summation order,
    # so the 16 directions give many exact ties whichever way the similarity blocks are computed.
    train_x = rng.choice([-1.0, 1.0], (50, 4))
    query_x = rng.choice([-1.0, 1.0], (23, 4))
    train_y = (rng.random((50, 3)) < 0.4).astype(int)
    for k in (1, 5, 17, 50):
        np.testing.assert_allclose(
            knn_scores(train_x, train_y, query_x, k, 0.07, task_type="multilabel"),
            _brute_force(train_x, train_y, query_x, k, 0.07),
            atol=1e-12,
        )
    classes = rng.integers(0, 4, 50)
    np.testing.assert_allclose(
        knn_scores(train_x, classes, query_x, 7, 0.1, task_type="multiclass"),
        _brute_force(train_x, np.eye(4)[classes], query_x, 7, 0.1),
        atol=1e-12,
    )


def test_neighbours_match_sklearn_without_ties():
    rng = np.random.default_rng(1)
    train_x = rng.standard_normal((300, 16)).astype(np.float32)
    query_x = rng.standard_normal((40, 16)).astype(np.float32)
    _, indices = _top_k_neighbours(_l2_normalised(train_x), _l2_normalised(query_x), 10)
    expected = (
        NearestNeighbors(n_neighbors=10, metric="cosine", algorithm="brute")
        .fit(train_x)
        .kneighbors(query_x, return_distance=False)
    )
    np.testing.assert_array_equal(indices, expected)


def test_scores_are_probabilities():
    rng = np.random.default_rng(2)
    classes = rng.integers(0, 3, 60)
    scores = knn_scores(
        rng.standard_normal((60, 8)),
        classes,
        rng.standard_normal((9, 8)).astype(np.float32),
        10,
        task_type="multiclass",
    )
    assert scores.dtype == np.float64 and scores.shape == (9, 3)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0)


def test_select_chooses_k_on_val_and_predicts_from_train_plus_val():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((140, 6))
    y = ((x[:, :2] + 0.8 * rng.standard_normal((140, 2))) > 0).astype(int)
    splits = (x[:80], y[:80], x[80:110], y[80:110], x[110:])
    test_scores, info = select_and_predict_knn(*splits, ks=[20, 1, 5], temperature=0.07, task_type="multilabel", seed=0)
    expected_val = [
        macro_auroc(y[80:110], knn_scores(x[:80], y[:80], x[80:110], k, 0.07, task_type="multilabel"), "multilabel")
        for k in (1, 5, 20)
    ]
    assert info["ks"] == [1, 5, 20]
    np.testing.assert_allclose(info["val_auroc"], expected_val, atol=1e-12)
    assert info["k"] == [1, 5, 20][int(np.argmax(expected_val))]
    np.testing.assert_array_equal(
        test_scores, knn_scores(x[:110], y[:110], x[110:], info["k"], 0.07, task_type="multilabel")
    )


def test_select_multiclass_keeps_classes_missing_from_train():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((60, 4))
    train_y, val_y = rng.integers(0, 2, 40), np.r_[rng.integers(0, 2, 19), 2]
    scores, info = select_and_predict_knn(
        x[:40], train_y, x[40:], val_y, x[:5], ks=[3], temperature=0.07, task_type="multiclass", seed=0
    )
    assert scores.shape == (5, 3) and info["k"] == 3


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="k must lie"):
        knn_scores(TRAIN_X, TRAIN_Y, TRAIN_X, 7, task_type="multilabel")
    with pytest.raises(ValueError, match="temperature"):
        knn_scores(TRAIN_X, TRAIN_Y, TRAIN_X, 2, 0.0, task_type="multilabel")
    with pytest.raises(ValueError, match="shape"):
        knn_scores(TRAIN_X, TRAIN_Y[:, 0], TRAIN_X, 2, task_type="binary")


# TRAIN_Y with missing labels (-1): label 0 unknown for point 4; label 1 unknown for points 0, 1 and 4.
MISSING_Y = np.array([[1, -1], [0, -1], [0, 0], [1, 1], [-1, -1], [1, 0]])


def test_hand_computed_vote_with_missing_neighbours():
    # Query along +x, k=3: neighbours 0 (cosine 1), 4 (1/sqrt2), then 1 (cosine 0, tied with 3; lower index first).
    # Label 0: point 4 does not know it, so the softmax runs over points 0 (label 1) and 1 (label 0).
    # Label 1: none of the three knows it, so it scores its prevalence among known references: 1 of points 2, 3, 5.
    scores = knn_scores(TRAIN_X, MISSING_Y, np.array([[5.0, 0.0]]), k=3, temperature=0.5, task_type="multilabel")
    np.testing.assert_allclose(scores, [[np.exp(2) / (np.exp(2) + np.exp(0)), 1 / 3]], atol=1e-12)
    # Query along (1, -1), k=1: points 0 and 3 tie; point 0 must win, so label 1 (known to 3, not to 0) is prevalence.
    scores = knn_scores(TRAIN_X, MISSING_Y, np.array([[1.0, -1.0]]), k=1, task_type="multilabel")
    np.testing.assert_allclose(scores, [[1.0, 1 / 3]], atol=1e-12)


def test_missing_top_neighbour_with_tiny_temperature_does_not_underflow():
    # Query along +x, k=2: neighbours 0 and 4. Point 0 does not know label 1; point 4 does (1). At T=1e-4 point 4's
    # share of the full softmax underflows to 0, but renormalised over the neighbours that know label 1 it is all.
    labels = MISSING_Y.copy()
    labels[4] = [0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = knn_scores(TRAIN_X, labels, np.array([[5.0, 0.0]]), k=2, temperature=1e-4, task_type="multilabel")
    np.testing.assert_array_equal(scores, [[1.0, 1.0]])


def _brute_force_missing(train_x, train_y, query_x, k, temperature):
    """Reference: per query and label, softmax over the known ones among the stable top k, else the prevalence."""
    train = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    query = query_x / np.linalg.norm(query_x, axis=1, keepdims=True)
    similarity = query @ train.T
    known = train_y != -1
    prevalence = [train_y[known[:, j], j].mean() for j in range(train_y.shape[1])]
    scores = np.empty((len(query_x), train_y.shape[1]))
    for row, similarities in enumerate(similarity):
        top = np.argsort(-similarities, kind="stable")[:k]
        for j in range(train_y.shape[1]):
            voters = top[known[top, j]]
            weights = np.exp(similarities[voters] / temperature)
            scores[row, j] = weights @ train_y[voters, j] / weights.sum() if len(voters) else prevalence[j]
    return scores


@pytest.mark.parametrize("chunk_elements", [1 << 24, 50])
def test_missing_labels_match_brute_force_with_ties_and_chunks(monkeypatch, chunk_elements):
    monkeypatch.setattr(knn, "_CHUNK_ELEMENTS", chunk_elements)
    rng = np.random.default_rng(5)
    train_x = rng.choice([-1.0, 1.0], (50, 4))  # exact cosines, many ties (see the test above without missing labels)
    query_x = rng.choice([-1.0, 1.0], (23, 4))
    train_y = (rng.random((50, 3)) < 0.4).astype(int)
    train_y[rng.random((50, 3)) < [0.2, 0.5, 0.9]] = -1  # label 2 is mostly missing: some votes have no known voter
    for k in (1, 5, 17, 50):
        np.testing.assert_allclose(
            knn_scores(train_x, train_y, query_x, k, 0.5, task_type="multilabel"),
            _brute_force_missing(train_x, train_y, query_x, k, 0.5),
            atol=1e-12,
        )


def test_select_with_missing_labels():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((140, 6))
    y = ((x[:, :2] + 0.8 * rng.standard_normal((140, 2))) > 0).astype(int)
    y[rng.random((140, 2)) < 0.3] = -1
    splits = (x[:80], y[:80], x[80:110], y[80:110], x[110:])
    test_scores, info = select_and_predict_knn(*splits, ks=[1, 5, 20], temperature=0.07, task_type="multilabel", seed=0)
    expected_val = [
        macro_auroc(y[80:110], knn_scores(x[:80], y[:80], x[80:110], k, 0.07, task_type="multilabel"), "multilabel")
        for k in (1, 5, 20)
    ]
    np.testing.assert_allclose(info["val_auroc"], expected_val, atol=1e-12)
    assert info["k"] == [1, 5, 20][int(np.argmax(expected_val))]
    assert test_scores.shape == (30, 2) and np.isfinite(test_scores).all()
    np.testing.assert_array_equal(
        test_scores, knn_scores(x[:110], y[:110], x[110:], info["k"], 0.07, task_type="multilabel")
    )
    again = select_and_predict_knn(*splits, ks=[1, 5, 20], temperature=0.07, task_type="multilabel", seed=0)
    np.testing.assert_array_equal(again[0], test_scores)
    assert again[1] == info


def test_missing_label_errors():
    with pytest.raises(ValueError, match="multiclass targets cannot be missing"):
        knn_scores(TRAIN_X, np.array([2, 0, 1, -1, 0, 2]), TRAIN_X, 2, task_type="multiclass")
    with pytest.raises(ValueError, match="label column 1 is missing"):
        knn_scores(TRAIN_X, np.c_[TRAIN_Y[:, 0], np.full(6, -1)], TRAIN_X, 2, task_type="multilabel")
    with pytest.raises(ValueError, match="must be 0/1, or -1"):
        knn_scores(TRAIN_X, TRAIN_Y * 2, TRAIN_X, 2, task_type="multilabel")
