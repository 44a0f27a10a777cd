"""Pieces shared by the probes trained with torch (MIL, linear heads): the loss and the feature standardiser."""

import numpy as np
import torch
import torch.nn.functional as F

from medprobe.evaluate.metrics import MISSING

# Feature statistics are accumulated over chunks of about this many values, so a memory map is never read whole.
STATS_ELEMENTS = 1 << 22


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, task_type: str) -> torch.Tensor | None:
    """Cross-entropy over classes, or BCE over the known (not -1) labels; None when no label is known."""
    if task_type == "multiclass":
        return F.cross_entropy(logits, targets)
    known = targets != MISSING
    if not known.any():
        return None
    losses = F.binary_cross_entropy_with_logits(logits, targets.clamp(min=0).to(logits.dtype), reduction="none")
    return losses[known].mean()


def standardiser(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 mean and standard deviation (1 where constant) of the rows, accumulated in float64 by chunks."""
    chunk = max(1, STATS_ELEMENTS // features.shape[1])
    total = np.zeros(features.shape[1])
    for start in range(0, len(features), chunk):
        total += np.asarray(features[start : start + chunk], dtype=np.float64).sum(axis=0)
    mean = total / len(features)
    squares = np.zeros(features.shape[1])
    for start in range(0, len(features), chunk):
        squares += ((np.asarray(features[start : start + chunk], dtype=np.float64) - mean) ** 2).sum(axis=0)
    std = np.sqrt(squares / len(features))
    return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)
