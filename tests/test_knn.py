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
