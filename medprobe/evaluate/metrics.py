"""Classification metrics and patient-level (cluster) bootstrap confidence intervals.

Every metric is computed from integer per-item weights (how many times an item is drawn), so the
point estimate (all weights 1) and the bootstrap replicates share one vectorised code path and a
replicate is never materialised as a resampled array. Definitions follow scikit-learn and the tests
check them against roc_auc_score, accuracy_score, balanced_accuracy_score and f1_score.

Binary/multilabel targets may mark a label MISSING (-1) for an item (e.g. CheXpert's "ignore"
uncertainty policy): that label is then scored as if the item were absent, by zeroing the item's
weight for it, while the item's other labels count as usual.
"""

from collections.abc import Sequence

import numpy as np

TASK_TYPES = ("binary", "multilabel", "multiclass")
MISSING = -1

# Bootstrap replicates are processed in blocks of about this many (replicate, item) weights, so that
# memory stays bounded on large test sets.
_BLOCK_ELEMENTS = 1 << 21


def label_indicator(y_true, n_columns: int, task_type: str) -> tuple[np.ndarray, np.ndarray]:
    """(n, L) boolean targets and (n, L) known mask: the labels themselves, or one-hot classes for multiclass.

    A missing (-1) binary/multilabel label reads as a False target with known False. Multiclass has no
    missing value: an item without its class cannot be placed in the one-vs-rest problems.
    """
    if task_type not in TASK_TYPES:
        raise ValueError(f"task_type must be one of {TASK_TYPES}, got {task_type!r}")
    y_true = np.asarray(y_true)
    if task_type == "multiclass":
        if y_true.ndim != 1:
            raise ValueError(f"multiclass targets must have shape (n,), got {y_true.shape}")
        if (y_true == MISSING).any():
            raise ValueError(f"multiclass targets cannot be missing ({MISSING}): every item needs its class")
        if y_true.size and (y_true.min() < 0 or y_true.max() >= n_columns):
            raise ValueError(f"multiclass targets must lie in 0..{n_columns - 1}")
        return y_true[:, None] == np.arange(n_columns), np.ones((len(y_true), n_columns), dtype=bool)
    if y_true.ndim != 2 or (task_type == "binary" and y_true.shape[1] != 1):
        raise ValueError(
            f"{task_type} targets must have shape (n, {'1' if task_type == 'binary' else 'L'}), got {y_true.shape}"
        )
    if not np.isin(y_true, (MISSING, 0, 1)).all():
        raise ValueError(f"{task_type} targets must be 0/1, or {MISSING} for a missing label")
    return y_true == 1, y_true != MISSING


def class_indices(one_hot) -> np.ndarray:
    """Class index of each row of an (n, C) one-hot 0/1 matrix, refusing missing (-1) entries.

    argmax alone would silently turn a row with a -1 into some class.
    """
    one_hot = np.asarray(one_hot)
    if (one_hot == MISSING).any():
        raise ValueError(f"multiclass targets cannot be missing ({MISSING}): every item needs its class")
    return one_hot.argmax(axis=1)


def _validated(y_true, y_score, task_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets, known mask and float scores, all (n, L)."""
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_score.ndim != 2:
        raise ValueError(f"y_score must have shape (n, L) or (n, C), got {y_score.shape}")
    if not np.isfinite(y_score).all():
        raise ValueError("y_score contains NaN or infinite values")
    targets, known = label_indicator(y_true, y_score.shape[1], task_type)
    if targets.shape != y_score.shape:
        raise ValueError(f"y_true {np.shape(y_true)} does not match y_score {y_score.shape}")
    return targets, known, y_score


def _weighted_auroc(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of one label for each row of weights (B, n); NaN where a class has zero weight.

    Mann-Whitney form (tied scores count 1/2), equal to roc_auc_score(sample_weight=...): items are
    sorted once, tie blocks summed with reduceat, and each positive block counts the negative weight
    strictly below it.
    """
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    block_starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    sorted_weights = weights[:, order]
    is_positive = positive[order]
    pos = np.add.reduceat(sorted_weights * is_positive, block_starts, axis=1)
    neg = np.add.reduceat(sorted_weights * ~is_positive, block_starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    numerator = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    denominator = pos.sum(axis=1) * neg.sum(axis=1)
    return np.divide(numerator, denominator, out=np.full(len(weights), np.nan), where=denominator > 0)


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.full(numerator.shape, np.nan), where=denominator > 0)


def _mean_defined(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over the defined (non-NaN) entries along axis; NaN where there are none, without numpy's warning."""
    defined = ~np.isnan(values)
    return _safe_ratio(np.where(defined, values, 0.0).sum(axis=axis), defined.sum(axis=axis))


def _threshold_metrics(targets, known, y_score, task_type, threshold, weights) -> dict[str, np.ndarray]:
    """accuracy, balanced_accuracy and macro f1 for each row of weights, as scikit-learn defines them."""
    if task_type == "multiclass":
        predicted = y_score.argmax(axis=1)[:, None] == np.arange(y_score.shape[1])
        true_positive = weights @ (targets & predicted)
        true_count = weights @ targets
        predicted_count = weights @ predicted
        # sklearn averages recall over classes present in y_true, F1 over classes in y_true or y_pred.
        recall = _safe_ratio(true_positive, true_count)
        f1 = _safe_ratio(2 * true_positive, true_count + predicted_count)
        return {
            "accuracy": true_positive.sum(axis=1) / weights.sum(axis=1),
            "balanced_accuracy": np.nanmean(recall, axis=1),
            "f1": np.nanmean(f1, axis=1),
        }
    predicted = y_score >= threshold
    negative = known & ~targets  # a missing label is neither positive nor negative
    true_positive = weights @ (targets & predicted)
    false_positive = weights @ (negative & predicted)
    false_negative = weights @ (targets & ~predicted)
    true_negative = weights @ (negative & ~predicted)
    n_known = true_positive + false_positive + false_negative + true_negative
    sensitivity = _safe_ratio(true_positive, true_positive + false_negative)
    specificity = _safe_ratio(true_negative, true_negative + false_positive)
    # Per label as sklearn's binary metrics (a one-class label: recall of the class present; F1 with
    # zero_division=0), then averaged over the labels with a known item (the others are undefined).
    balanced = _mean_defined(np.stack([sensitivity, specificity]), axis=0)
    f1_denominator = 2 * true_positive + false_positive + false_negative
    f1 = np.divide(2 * true_positive, f1_denominator, out=np.zeros_like(true_positive), where=f1_denominator > 0)
    return {
        "accuracy": _mean_defined(_safe_ratio(true_positive + true_negative, n_known), axis=1),
        "balanced_accuracy": _mean_defined(balanced, axis=1),
        "f1": _mean_defined(np.where(n_known > 0, f1, np.nan), axis=1),
    }


def _metric_arrays(targets, known, y_score, task_type, label_names, threshold, weights) -> dict[str, np.ndarray]:
    per_label = np.stack(
        [_weighted_auroc(targets[:, j], y_score[:, j], weights * known[:, j]) for j in range(targets.shape[1])],
        axis=1,
    )
    arrays = {"auroc": _mean_defined(per_label, axis=1)}
    if len(label_names) >= 2:
        arrays.update({f"auroc[{name}]": per_label[:, j] for j, name in enumerate(label_names)})
    arrays.update(_threshold_metrics(targets, known, y_score, task_type, threshold, weights))
    return arrays


def _check_label_names(label_names: Sequence[str], n_columns: int) -> list[str]:
    label_names = [str(name) for name in label_names]
    if len(label_names) != n_columns:
        raise ValueError(f"{len(label_names)} label names for {n_columns} score columns")
    return label_names


def auroc_per_label(y_true, y_score, task_type: str) -> np.ndarray:
    """AUROC per label (per class, one-vs-rest, for multiclass) over the items where it is known.

    NaN for a label whose known items have one class (or that no item knows).
    """
    targets, known, y_score = _validated(y_true, y_score, task_type)
    weights = np.ones((1, len(y_score)))
    return np.array(
        [_weighted_auroc(targets[:, j], y_score[:, j], weights * known[:, j])[0] for j in range(targets.shape[1])]
    )


def macro_auroc(y_true, y_score, task_type: str) -> float:
    """Mean AUROC over the labels where it is defined (NaN if none): the probes' selection metric."""
    per_label = auroc_per_label(y_true, y_score, task_type)
    return float(np.nanmean(per_label)) if np.isfinite(per_label).any() else float("nan")


def compute_metrics(
    y_true, y_score, task_type: str, label_names: Sequence[str], threshold: float = 0.5
) -> dict[str, float]:
    """Point metrics: auroc (macro), auroc[<label>] (when >= 2 labels/classes), accuracy, balanced_accuracy, f1.

    Binary/multilabel: a label is positive when score >= threshold and accuracy, balanced_accuracy and
    f1 are per-label binary metrics averaged over labels; multiclass uses the argmax class and macro
    averages. Each label is scored only on the items where it is known (not -1); a label whose known
    items have one class (or that no item knows) has AUROC NaN and is left out of the macro AUROC, and
    a label no item knows is left out of the threshold metrics' averages too. ``n_labels_auroc``
    records how many labels the macro AUROC averages (a count, not bootstrapped).
    """
    targets, known, y_score = _validated(y_true, y_score, task_type)
    if len(y_score) == 0:
        raise ValueError("no items to evaluate")
    label_names = _check_label_names(label_names, y_score.shape[1])
    arrays = _metric_arrays(targets, known, y_score, task_type, label_names, threshold, np.ones((1, len(y_score))))
    metrics = {name: float(values[0]) for name, values in arrays.items()}
    per_label_names = [f"auroc[{name}]" for name in label_names] if len(label_names) >= 2 else ["auroc"]
    metrics["n_labels_auroc"] = int(sum(np.isfinite(metrics[name]) for name in per_label_names))
    return metrics


def bootstrap_ci(
    y_true,
    y_score,
    groups,
    task_type: str,
    label_names: Sequence[str],
    n_boot: int,
    seed: int,
    ci: float = 0.95,
    threshold: float = 0.5,
) -> dict[str, tuple[float, float, int]]:
    """Percentile CI of every metric of compute_metrics (except n_labels_auroc) under a cluster bootstrap.

    Patients (unique groups) are drawn with replacement and bring all their items, because items of
    one patient are correlated and item-level resampling would understate the uncertainty. Returns
    metric -> (low, high, n_valid_replicates); replicates where a metric is undefined (an AUROC
    whose label has one class in the replicate) are skipped for that metric. Missing (-1) labels are
    masked per label through the same weights, so a drawn item still counts for its known labels.
    Deterministic for a given seed: numpy Generator(PCG64(seed)), patients in sorted id order.
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    targets, known, y_score = _validated(y_true, y_score, task_type)
    label_names = _check_label_names(label_names, y_score.shape[1])
    groups = np.asarray(groups)
    if groups.shape != (len(y_score),):
        raise ValueError(f"groups must have shape ({len(y_score)},), got {groups.shape}")
    _, item_group = np.unique(groups, return_inverse=True)
    n_groups = int(item_group.max()) + 1 if len(item_group) else 0
    if n_groups == 0:
        raise ValueError("no items to evaluate")

    rng = np.random.Generator(np.random.PCG64(seed))
    block = max(1, _BLOCK_ELEMENTS // max(n_groups, len(y_score)))
    blocks = []
    for start in range(0, n_boot, block):
        size = min(block, n_boot - start)
        draws = rng.integers(0, n_groups, size=(size, n_groups))
        flat = (np.arange(size)[:, None] * n_groups + draws).ravel()
        group_counts = np.bincount(flat, minlength=size * n_groups).reshape(size, n_groups)
        weights = group_counts[:, item_group].astype(np.float64)
        blocks.append(_metric_arrays(targets, known, y_score, task_type, label_names, threshold, weights))

    tail = 50 * (1 - ci)
    intervals = {}
    for name in blocks[0]:
        values = np.concatenate([arrays[name] for arrays in blocks])
        values = values[np.isfinite(values)]
        if len(values) == 0:
            intervals[name] = (float("nan"), float("nan"), 0)
        else:
            low, high = np.percentile(values, [tail, 100 - tail])
            intervals[name] = (float(low), float(high), int(len(values)))
    return intervals
