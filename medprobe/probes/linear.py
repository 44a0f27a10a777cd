"""Linear-head probe: one linear layer per learning rate of a grid, all trained in one pass over the data.

The protocol of DINOv2's linear evaluation and of study B (PROTOCOLS.md): SGD with momentum 0.9 and a
cosine schedule, one head per learning rate fed the same shuffled batches, the head chosen by validation
macro AUROC (ties: the first in the grid), then by default the chosen learning rate retrained on train +
val and test scored once. Every head starts from the same seeded initialisation (normal, std 0.01, as
DINOv2) and owns its parameters, so a head trained in the grid is exactly the head trained alone.
Features are standardised with the training rows' mean and standard deviation, so one learning-rate grid
suits every backbone's feature scale. Loss: BCE over the known (not -1) labels for binary/multilabel,
cross-entropy for multiclass. On CPU the same inputs and seed give byte-identical scores.
"""

import numpy as np
import torch
from torch import nn

from medprobe.evaluate.metrics import label_indicator, macro_auroc
from medprobe.probes.training import classification_loss, standardiser

DEFAULTS = {
    "lrs": [1e-3, 5e-3, 1e-2, 5e-2],  # study B's grid; DINOv2 uses 13 values from 1e-5 to 0.1
    "epochs": 50,  # study A
    "batch_size": 256,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "refit": True,  # retrain the chosen learning rate on train + val (study B); False scores with the train head
    "device": "cpu",  # or "cuda", "cuda:1": scores then match CPU's only to float tolerance
}


def _settings(params: dict) -> dict:
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown linear-head parameters {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    settings = {**DEFAULTS, **params}
    lrs = [float(lr) for lr in settings["lrs"]]
    if not lrs or min(lrs) <= 0:
        raise ValueError(f"linear-head lrs must be a non-empty list of positive numbers, got {settings['lrs']}")
    for key in ("epochs", "batch_size"):
        if int(settings[key]) < 1:
            raise ValueError(f"linear-head parameter {key} must be >= 1, got {settings[key]}")
    return {**settings, "lrs": lrs}


def _n_outputs(y_train: np.ndarray, y_val: np.ndarray, task_type: str) -> int:
    if task_type == "multiclass":
        return int(max(y_train.max(), y_val.max())) + 1
    return y_train.shape[1] if y_train.ndim == 2 else 0


def _train_heads(x: np.ndarray, y: np.ndarray, lrs: list[float], settings: dict, task_type: str, n_outputs: int,
                 seed: int) -> tuple[list[nn.Linear], tuple[np.ndarray, np.ndarray], list[list[float]]]:
    """One head per learning rate on (x, y), the same batches for all; returns heads, scaler, loss per epoch."""
    device = torch.device(settings["device"])
    scaler = standardiser(x)
    features = torch.from_numpy((x - scaler[0]) / scaler[1]).to(device)
    targets = torch.from_numpy(y.astype(np.int64)).to(device)
    init = torch.Generator().manual_seed(seed)
    weight = torch.randn(n_outputs, x.shape[1], generator=init) * 0.01
    heads = []
    for _ in lrs:
        head = nn.Linear(x.shape[1], n_outputs).to(device)
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.zero_()
        heads.append(head)
    optimizer = torch.optim.SGD([{"params": head.parameters(), "lr": lr} for head, lr in zip(heads, lrs)],
                                momentum=float(settings["momentum"]), weight_decay=float(settings["weight_decay"]))
    batch_size, epochs = int(settings["batch_size"]), int(settings["epochs"])
    steps_per_epoch = -(-len(x) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    rng = np.random.Generator(np.random.PCG64(seed))
    losses = [[] for _ in lrs]
    for _ in range(epochs):
        epoch_losses = [[] for _ in lrs]
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch_size):
            rows = torch.from_numpy(order[start : start + batch_size]).to(device)
            batch_x, batch_y = features[rows], targets[rows]
            head_losses = [classification_loss(head(batch_x), batch_y, task_type) for head in heads]
            optimizer.zero_grad()
            if head_losses[0] is not None:  # no known label in this batch: nothing to learn from it
                torch.stack(head_losses).sum().backward()
                optimizer.step()
                for losses_of_head, loss in zip(epoch_losses, head_losses):
                    losses_of_head.append(loss.item())
            schedule.step()
        for history, epoch_of_head in zip(losses, epoch_losses):
            history.append(float(np.mean(epoch_of_head)) if epoch_of_head else float("nan"))
    return heads, scaler, losses


@torch.no_grad()
def _predict(head: nn.Linear, x: np.ndarray, scaler: tuple[np.ndarray, np.ndarray], task_type: str) -> np.ndarray:
    """(n, L) probabilities (float64): softmax over classes, or sigmoid per label."""
    features = torch.from_numpy((x - scaler[0]) / scaler[1]).to(head.weight.device)
    logits = head(features).double()
    return (torch.softmax(logits, dim=1) if task_type == "multiclass" else torch.sigmoid(logits)).cpu().numpy()


def run_linear(train_x, y_train, val_x, y_val, test_x, params: dict, task_type: str,
               seed: int) -> tuple[np.ndarray, dict]:
    """Train a linear head per learning rate on train, choose one on val, score test (see the module).

    Targets as the other probes: binary/multilabel (n, L) 0/1 with -1 for a missing label, multiclass (n,)
    class indices (classes: max(train, val) + 1). params override DEFAULTS; an unknown key is an error.
    Returns test probabilities (n_test, L) and info: lrs, val_auroc per lr, chosen_lr, refit, train_loss per
    epoch of the head that scored test, and the resolved params. Raises ValueError when validation AUROC is
    undefined (every label has one class in val).
    """
    settings = _settings(params)
    train_x, val_x, test_x = (np.asarray(x, dtype=np.float32) for x in (train_x, val_x, test_x))
    y_train, y_val = np.asarray(y_train), np.asarray(y_val)
    n_outputs = _n_outputs(y_train, y_val, task_type)
    for name, x, y in (("train", train_x, y_train), ("val", val_x, y_val)):
        label_indicator(y, n_outputs, task_type)
        if len(x) != len(y):
            raise ValueError(f"{name} has {len(x)} feature rows but {len(y)} targets")
    positive, known = label_indicator(y_val, n_outputs, task_type)
    if not ((positive & known).any(axis=0) & (~positive & known).any(axis=0)).any():
        raise ValueError("validation macro AUROC is undefined (every label has one class in val): no lr to choose")

    lrs = settings["lrs"]
    fork_devices = [] if settings["device"] == "cpu" else [torch.device(settings["device"]).index or 0]
    with torch.random.fork_rng(devices=fork_devices):  # leaves the caller's RNG state as it was
        heads, scaler, losses = _train_heads(train_x, y_train, lrs, settings, task_type, n_outputs, seed)
        val_scores = [_predict(head, val_x, scaler, task_type) for head in heads]
        # A learning rate too large for the features diverges; its head is recorded as NaN, never chosen.
        val_auroc = [macro_auroc(y_val, scores, task_type) if np.isfinite(scores).all() else float("nan")
                     for scores in val_scores]
        if np.isnan(val_auroc).all():
            raise ValueError(f"every linear head diverged (non-finite scores) at lrs {lrs}: use smaller lrs")
        chosen = int(np.nanargmax(val_auroc))
        head, train_loss = heads[chosen], losses[chosen]
        if settings["refit"]:
            train_val_y = np.concatenate([y_train, y_val])
            (head,), scaler, (train_loss,) = _train_heads(np.concatenate([train_x, val_x]), train_val_y,
                                                          [lrs[chosen]], settings, task_type, n_outputs, seed)
        test_scores = _predict(head, test_x, scaler, task_type)
    if not np.isfinite(test_scores).all():
        raise ValueError(f"the linear head at lr {lrs[chosen]} diverged when refit on train + val: use smaller lrs")
    info = {
        "lrs": lrs,
        "val_auroc": [float(value) for value in val_auroc],
        "chosen_lr": lrs[chosen],
        "refit": bool(settings["refit"]),
        "train_loss": train_loss,
        "params": settings,
    }
    return test_scores, info
