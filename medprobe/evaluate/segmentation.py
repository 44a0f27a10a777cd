"""Segmentation metrics per image or volume (Dice, IoU and HD95 as MONAI defines them) and their summary with
patient-level CIs.

The three metrics are computed here with numpy, scipy and torch.quantile by the operations MONAI's compute_dice,
compute_iou and compute_hausdorff_distance use, so that every value is identical to MONAI's (tests compare them on
2-D and 3-D masks, anisotropic spacing and masks touching the border): importing MONAI takes about 6 s, most of a
short evaluation job, and the demo runs 12 of them. Counts are exact integers where MONAI sums float32 ones, which
only differs above 2**24 voxels of one structure.

Empty structures follow the BraTS convention (rachitsaluja/BraTS-2024-Metrics, the "legacy" full-image Dice
and HD95): a label absent from both truth and prediction scores Dice 1, Jaccard 1, HD95 0 (nothing to find,
nothing found). A label present in only one of them scores Dice 0, Jaccard 0 and HD95 equal to the diagonal
of the image's field of view (shape x spacing, in mm), a bound on any distance inside it: BraTS's 373.13 mm
penalty is this diagonal for its 240 x 240 x 155 1-mm grid (its lesion-wise code rounds it to 374). A missed
or hallucinated structure is thus penalised in every mean instead of being dropped. nnU-Net differs: its
evaluation (nnunet/evaluation/metrics.py, nnunetv2/evaluation/evaluate_predictions.py) returns NaN for a label
absent from both and averages with nanmean, i.e. leaves such cases out.
"""

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.ndimage import binary_erosion
from scipy.spatial import KDTree

METRICS = ("dice", "jaccard", "hd95")
# Bootstrap replicates are drawn in blocks of about this many (replicate, case) weights, bounding memory.
_BLOCK_ELEMENTS = 1 << 21


def _check_spacing(spacing, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != ndim or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing must be {ndim} positive finite numbers (one per array axis), got {spacing}")
    return spacing


def segmentation_scores(pred, truth, labels: Sequence[int], spacing: Sequence[float] | None = None) -> dict:
    """label -> {"dice", "jaccard", "hd95"} for one 2-D image or 3-D volume given as integer label maps.

    Each label is scored one-vs-rest on its own binary mask. hd95 is MONAI's symmetric 95th-percentile
    Hausdorff distance between the masks' edge voxels, in mm when spacing (mm per array axis) is given and
    in voxels otherwise. Empty labels follow the module's convention: both empty -> 1, 1, 0; one empty ->
    0, 0, the field-of-view diagonal. Raises ValueError for mismatched shapes, non-integer maps, a dimension
    other than 2 or 3, no labels, or a bad spacing.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    if pred.ndim not in (2, 3):
        raise ValueError(f"label maps must be 2-D or 3-D, got {pred.ndim}-D")
    for name, array in (("prediction", pred), ("truth", truth)):
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
            raise ValueError(f"{name} must be an integer label map, got dtype {array.dtype}")
    labels = [int(label) for label in labels]
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be a non-empty list of distinct integers, got {labels}")
    spacing = _check_spacing(spacing, pred.ndim)
    diagonal = float(np.linalg.norm(np.multiply(pred.shape, spacing)))

    scores = {}
    for label in labels:
        pred_mask, truth_mask = pred == label, truth == label
        n_pred, n_truth = int(pred_mask.sum()), int(truth_mask.sum())
        if not n_pred and not n_truth:
            scores[label] = {"dice": 1.0, "jaccard": 1.0, "hd95": 0.0}
            continue
        overlap = int(np.count_nonzero(pred_mask & truth_mask))
        # float32 division of the counts, as MONAI's metrics compute them
        dice = float(np.float32(2 * overlap) / np.float32(n_pred + n_truth))
        jaccard = float(np.float32(overlap) / np.float32(n_pred + n_truth - overlap))
        hd95 = _hd95(pred_mask, truth_mask, spacing) if n_pred and n_truth else diagonal
        scores[label] = {"dice": dice, "jaccard": jaccard, "hd95": hd95}
    return scores


def _hd95(pred_mask: np.ndarray, truth_mask: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Symmetric 95th-percentile distance between the edge voxels of two non-empty masks (MONAI's definition).

    Edges are the voxels that a binary erosion (cross-shaped element, outside counted as background) removes, found
    in the masks' joint bounding box grown by one voxel. Coordinates count from that box's corner, the frame MONAI
    crops to, so that the float arithmetic, and therefore every distance, is MONAI's.
    """
    union = np.nonzero(pred_mask | truth_mask)
    origin = np.array([axis.min() - 1 for axis in union])  # may be -1: MONAI pads there
    window = tuple(slice(max(low, 0), axis.max() + 2) for low, axis in zip(origin, union))
    shift = np.array([w.start for w in window]) - origin
    scale = np.asarray(spacing, dtype=np.float64)
    edges = [(np.argwhere(binary_erosion(mask[window]) ^ mask[window]) + shift) * scale
             for mask in (pred_mask, truth_mask)]
    directed = [KDTree(edges[1 - side], leafsize=32).query(edges[side], k=1)[0] for side in (0, 1)]
    return float(max(torch.quantile(torch.from_numpy(d.astype(np.float32)), 0.95) for d in directed))


def _case_table(scores_per_case: pd.DataFrame) -> tuple[np.ndarray, list, np.ndarray]:
    """(n_cases, n_labels, n_metrics) values, the sorted labels, and each case's patient index."""
    required = {"case_id", "patient_id", "label", *METRICS}
    missing = required - set(scores_per_case.columns)
    if missing:
        raise ValueError(f"scores_per_case lacks columns {sorted(missing)}")
    if scores_per_case.empty:
        raise ValueError("scores_per_case has no rows")
    if scores_per_case.duplicated(["case_id", "label"]).any():
        raise ValueError("scores_per_case has more than one row for a (case_id, label)")
    patients_per_case = scores_per_case.groupby("case_id")["patient_id"].nunique()
    shared = sorted(patients_per_case.index[patients_per_case > 1])
    if shared:
        raise ValueError(f"cases belong to more than one patient: {shared}")
    wide = scores_per_case.pivot(index="case_id", columns="label", values=list(METRICS)).sort_index()
    labels = sorted(scores_per_case["label"].unique())
    # A (case, label) without a row is NaN, like any other undefined value.
    values = np.stack([wide[metric].reindex(columns=labels).to_numpy(np.float64) for metric in METRICS], axis=2)
    if np.isinf(values).any():
        raise ValueError("scores_per_case has infinite values; an undefined score must be NaN")
    case_patient = scores_per_case.drop_duplicates("case_id").set_index("case_id")["patient_id"].loc[wide.index]
    _, patient_index = np.unique(case_patient.to_numpy(), return_inverse=True)
    return values, labels, patient_index


def _means(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-label means (B, L, M) over defined cases and their macro (B, M) over labels with a defined mean."""
    defined = ~np.isnan(values)
    totals = np.einsum("bc,clm->blm", weights, np.where(defined, values, 0.0))
    counts = np.einsum("bc,clm->blm", weights, defined.astype(np.float64))
    per_label = np.divide(totals, counts, out=np.full(totals.shape, np.nan), where=counts > 0)
    label_defined = ~np.isnan(per_label)
    n_defined = label_defined.sum(axis=1)
    macro_total = np.where(label_defined, per_label, 0.0).sum(axis=1)
    macro = np.divide(macro_total, n_defined, out=np.full(macro_total.shape, np.nan), where=n_defined > 0)
    return per_label, macro


def summarize_cases(scores_per_case: pd.DataFrame, n_bootstrap: int, ci: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Mean of each metric per label over cases, and its macro over labels, with patient-level bootstrap CIs.

    scores_per_case has one row per (case_id, label) with patient_id, dice, jaccard and hd95. A NaN value
    (or a missing row) is left out of that label's mean; the macro averages the labels whose mean is
    defined. Replicates draw patients with replacement, each bringing all of its cases, from
    numpy Generator(PCG64(seed)) over the sorted patient ids, so the result is deterministic; a replicate
    where a mean is undefined is skipped for it, and the CI is the percentile interval of the rest (NaN
    when none remain or n_bootstrap is 0). Returns rows (metric, label | "macro", value, ci_low, ci_high,
    n_cases), n_cases counting the cases with a defined value (for macro: cases with any).
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    values, labels, patient_index = _case_table(scores_per_case)
    n_cases, n_patients = len(values), int(patient_index.max()) + 1
    point_label, point_macro = (means[0] for means in _means(values, np.ones((1, n_cases))))

    rng = np.random.Generator(np.random.PCG64(seed))
    block = max(1, _BLOCK_ELEMENTS // max(n_patients, n_cases))
    boot_label, boot_macro = [np.empty((0, len(labels), len(METRICS)))], [np.empty((0, len(METRICS)))]
    for start in range(0, n_bootstrap, block):
        size = min(block, n_bootstrap - start)
        draws = rng.integers(0, n_patients, size=(size, n_patients))
        flat = (np.arange(size)[:, None] * n_patients + draws).ravel()
        patient_counts = np.bincount(flat, minlength=size * n_patients).reshape(size, n_patients)
        block_label, block_macro = _means(values, patient_counts[:, patient_index].astype(np.float64))
        boot_label.append(block_label)
        boot_macro.append(block_macro)
    boot_label, boot_macro = np.concatenate(boot_label), np.concatenate(boot_macro)

    tail = 50 * (1 - ci)

    def interval(replicates: np.ndarray) -> tuple[float, float]:
        replicates = replicates[np.isfinite(replicates)]
        if len(replicates) == 0:
            return float("nan"), float("nan")
        low, high = np.percentile(replicates, [tail, 100 - tail])
        return float(low), float(high)

    defined = ~np.isnan(values)
    records = []
    for m, metric in enumerate(METRICS):
        for j, label in enumerate(labels):
            low, high = interval(boot_label[:, j, m])
            records.append((metric, label, float(point_label[j, m]), low, high, int(defined[:, j, m].sum())))
        low, high = interval(boot_macro[:, m])
        records.append((metric, "macro", float(point_macro[m]), low, high, int(defined[:, :, m].any(axis=1).sum())))
    return pd.DataFrame(records, columns=["metric", "label", "value", "ci_low", "ci_high", "n_cases"])
