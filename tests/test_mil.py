import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medprobe.evaluate.metrics import macro_auroc
from medprobe.probes.logreg import c_grid, select_and_predict_logreg
from medprobe.probes.mil import GatedAttentionMIL, run_mil
from medprobe.probes.training import classification_loss

FAST = {"epochs": 4, "hidden": 32, "attention": 16}


@pytest.fixture(autouse=True)
def one_thread():
    """Bags this small train faster on one thread, and their time stops depending on the machine's other load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def planted(rng, n_bags: int, bag_size: int, dim: int = 8, shift: float = 6.0):
    """Gaussian instances; a positive bag (half of them) hides one instance shifted along feature 0."""
    y = np.arange(n_bags) % 2
    rng.shuffle(y)
    sizes = rng.integers(bag_size // 2, bag_size * 3 // 2, size=n_bags)
    features = rng.standard_normal((sizes.sum(), dim)).astype(np.float32)
    offsets = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    for bag in np.flatnonzero(y):
        features[offsets[bag] + rng.integers(sizes[bag]), 0] += shift
    return (features, offsets), y[:, None]


def splits(seed: int, bag_size: int = 12, n_train: int = 40):
    rng = np.random.default_rng(seed)
    return planted(rng, n_train, bag_size), planted(rng, 20, bag_size), planted(rng, 30, bag_size)


def mean_pooled(bags) -> np.ndarray:
    features, offsets = bags
    return np.add.reduceat(features, offsets[:-1], axis=0) / np.diff(offsets)[:, None]


def test_attention_sums_to_one_per_bag_including_a_single_instance():
    (train, y_train), (val, y_val), (test, _) = splits(0)
    features, offsets = test
    # Make the first test bag a bag of one instance.
    test = (np.concatenate([features[:1], features[offsets[1]:]]), np.r_[0, offsets[1:] - offsets[1] + 1])
    scores, info = run_mil(train, y_train, val, y_val, test, FAST, "binary", seed=0)
    assert scores.shape == (len(test[1]) - 1, 1)
    assert [len(a) for a in info["attention"]] == np.diff(test[1]).tolist()
    assert info["attention"][0].tolist() == [1.0]
    for weights in info["attention"]:
        assert weights.dtype == np.float32 and (weights >= 0).all()
        assert weights.sum() == pytest.approx(1.0, abs=1e-5)


def test_a_bags_score_does_not_depend_on_its_instance_order():
    (train, y_train), (val, y_val), (test, _) = splits(1)
    features, offsets = test
    rng = np.random.default_rng(0)
    order = np.concatenate([start + rng.permutation(stop - start) for start, stop in zip(offsets[:-1], offsets[1:])])
    scores, info = run_mil(train, y_train, val, y_val, test, FAST, "binary", seed=3)
    shuffled_scores, shuffled_info = run_mil(train, y_train, val, y_val, (features[order], offsets), FAST, "binary", 3)
    np.testing.assert_allclose(shuffled_scores, scores, rtol=1e-5, atol=1e-7)
    inverse = np.argsort(order)
    np.testing.assert_allclose(np.concatenate(shuffled_info["attention"])[inverse], np.concatenate(info["attention"]),
                               rtol=1e-5, atol=1e-7)


def test_the_module_mixes_bags_of_a_batch_only_within_each_bag():
    torch.manual_seed(0)
    model = GatedAttentionMIL(5, 3, hidden=8, attention=4, dropout=0.0).eval()
    a, b = torch.randn(4, 5), torch.randn(7, 5)
    together, weights = model(torch.cat([a, b]), torch.tensor([0] * 4 + [1] * 7), 2)
    alone_a, _ = model(a, torch.zeros(4, dtype=torch.long), 1)
    alone_b, _ = model(b, torch.zeros(7, dtype=torch.long), 1)
    torch.testing.assert_close(together, torch.cat([alone_a, alone_b]))
    torch.testing.assert_close(torch.stack([weights[:4].sum(), weights[4:].sum()]), torch.ones(2))


def test_same_seed_gives_identical_results_and_another_seed_does_not():
    (train, y_train), (val, y_val), (test, _) = splits(2)
    first, first_info = run_mil(train, y_train, val, y_val, test, FAST, "binary", seed=7)
    torch.manual_seed(123)  # the caller's global RNG state must not matter
    again, again_info = run_mil(train, y_train, val, y_val, test, FAST, "binary", seed=7)
    assert first.tobytes() == again.tobytes()
    assert first_info["val_auroc"] == again_info["val_auroc"] and first_info["train_loss"] == again_info["train_loss"]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(first_info["attention"], again_info["attention"]))
    other, _ = run_mil(train, y_train, val, y_val, test, FAST, "binary", seed=8)
    assert other.tobytes() != first.tobytes()


def test_it_finds_a_rare_positive_instance_that_mean_pooling_dilutes():
    """One shifted instance among ~100: attention finds it, the mean over the bag barely moves."""
    (train, y_train), (val, y_val), (test, y_test) = splits(0, bag_size=100, n_train=100)
    logreg_scores, _ = select_and_predict_logreg(mean_pooled(train), y_train, mean_pooled(val), y_val,
                                                 mean_pooled(test), c_grid(1e-4, 1e2, 13), "binary", 1000, seed=0)
    logreg_auroc = macro_auroc(y_test, logreg_scores, "binary")
    for seed in range(3):
        scores, info = run_mil(train, y_train, val, y_val, test, {"epochs": 15}, "binary", seed)
        mil_auroc = macro_auroc(y_test, scores, "binary")
        assert mil_auroc > 0.9, (seed, mil_auroc, info["val_auroc"])
        assert mil_auroc > logreg_auroc + 0.15, (seed, mil_auroc, logreg_auroc)
        assert 1 <= info["chosen_epoch"] <= 15 and len(info["val_auroc"]) == len(info["train_loss"]) == 15
        assert info["val_auroc"][info["chosen_epoch"] - 1] == max(info["val_auroc"])


def test_multiclass_and_multilabel_shapes():
    (train, _), (val, _), (test, _) = splits(3)
    rng = np.random.default_rng(0)
    n_train, n_val, n_test = (len(o) - 1 for _, o in (train, val, test))
    y_train, y_val = np.arange(n_train) % 3, np.arange(n_val) % 3
    scores, _ = run_mil(train, y_train, val, y_val, test, FAST, "multiclass", seed=0)
    assert scores.shape == (n_test, 3)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    y_train, y_val = rng.integers(0, 2, size=(n_train, 4)), rng.integers(0, 2, size=(n_val, 4))
    scores, info = run_mil(train, y_train, val, y_val, test, FAST, "multilabel", seed=0)
    assert scores.shape == (n_test, 4) and ((scores > 0) & (scores < 1)).all()
    assert len(info["attention"]) == n_test


def test_missing_labels_carry_no_loss_and_no_gradient():
    logits = torch.randn(5, 3, requires_grad=True)
    targets = torch.tensor([[1, -1, 0], [0, 1, -1], [-1, -1, -1], [1, 0, 1], [0, -1, 1]])
    known = targets != -1
    loss = classification_loss(logits, targets, "multilabel")
    expected = F.binary_cross_entropy_with_logits(logits[known], targets[known].float())
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert (logits.grad[~known] == 0).all() and (logits.grad[known] != 0).all()
    assert classification_loss(logits, torch.full((5, 3), -1), "multilabel") is None  # such a batch is skipped


def test_missing_labels_in_train_and_val_are_ignored_end_to_end():
    (train, y_train), (val, y_val), (test, _) = splits(4)
    rng = np.random.default_rng(1)
    y_train = np.concatenate([y_train, 1 - y_train], axis=1)
    y_val = np.concatenate([y_val, 1 - y_val], axis=1)
    y_train[rng.random(y_train.shape) < 0.3] = -1
    y_val[rng.random(y_val.shape) < 0.3] = -1
    scores, info = run_mil(train, y_train, val, y_val, test, FAST, "multilabel", seed=0)
    assert scores.shape == (len(test[1]) - 1, 2) and np.isfinite(scores).all()
    assert all(np.isfinite(info["val_auroc"]))


def test_bad_input_is_refused():
    (train, y_train), (val, y_val), (test, _) = splits(5)
    features, offsets = train
    with pytest.raises(ValueError, match="empty bag"):
        run_mil((features, np.r_[0, 0, offsets[1:]]), np.r_[y_train[:1], y_train], val, y_val, test, FAST, "binary", 0)
    with pytest.raises(ValueError, match="start at 0 and end"):
        run_mil((features[:-1], offsets), y_train, val, y_val, test, FAST, "binary", 0)
    with pytest.raises(ValueError, match="bags but"):
        run_mil(train, y_train[:-1], val, y_val, test, FAST, "binary", 0)
    with pytest.raises(ValueError, match="dims"):
        run_mil(train, y_train, val, y_val, (test[0][:, :3], test[1]), FAST, "binary", 0)
    with pytest.raises(ValueError, match="unknown MIL parameters"):
        run_mil(train, y_train, val, y_val, test, {"learning_rate": 1e-3}, "binary", 0)
    with pytest.raises(ValueError, match="AUROC is undefined"):
        run_mil(train, y_train, val, np.zeros_like(y_val), test, FAST, "binary", 0)


def test_batches_of_bags_chunked_prediction_and_float16_memory_maps(tmp_path, monkeypatch):
    (train, y_train), (val, y_val), (test, _) = splits(6)
    params = {**FAST, "batch_bags": 5}
    half = [(features.astype(np.float16), offsets) for features, offsets in (train, val, test)]
    scores, info = run_mil(half[0], y_train, half[1], y_val, half[2], params, "binary", seed=0)
    np.save(tmp_path / "train.npy", half[0][0])
    mapped = (np.load(tmp_path / "train.npy", mmap_mode="r"), half[0][1])
    # Prediction in chunks of a few bags (real slides exceed one chunk) must not change a score.
    monkeypatch.setattr("medprobe.probes.mil._PREDICT_INSTANCES", 30)
    chunked, chunked_info = run_mil(mapped, y_train, half[1], y_val, half[2], params, "binary", seed=0)
    np.testing.assert_allclose(chunked, scores, rtol=1e-5)  # matrix products of other sizes round differently
    np.testing.assert_allclose(chunked_info["val_auroc"], info["val_auroc"])
    assert [len(a) for a in chunked_info["attention"]] == np.diff(test[1]).tolist()


def test_non_finite_features_are_refused_naming_the_split():
    (train, y_train), (val, y_val), (test, _) = splits(7)
    features = test[0].copy()
    features[3, 1] = np.nan
    with pytest.raises(ValueError, match="test bag features contain NaN"):
        run_mil(train, y_train, val, y_val, (features, test[1]), FAST, "binary", 0)
