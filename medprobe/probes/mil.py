"""Gated-attention multiple-instance learning probe (Ilse, Tomczak & Welling 2018, "Attention-based Deep
Multiple Instance Learning", the gated variant) for bags of frozen features: slices of a volume, tiles of a slide.

A bag arrives in the shared (features, offsets) form: features (n_instances_total, D) concatenated over bags
and offsets (n_bags + 1,), bag i being rows offsets[i]:offsets[i + 1]. Several bags train in one step without
padding: the attention softmax runs per bag over a segment index (scatter max, exp, index_add), and the
attention-weighted sum is one index_add. Features are standardised with the training instances' mean and
standard deviation and read batch by batch, so float16 memory-mapped features are never copied whole.

The epoch whose weights score test is chosen by validation macro AUROC (ties: the earliest); test is only
ever predicted. One seed per call; on CPU the same inputs and seed give byte-identical scores.
"""

import numpy as np
import torch
from torch import nn

from medprobe.evaluate.metrics import label_indicator, macro_auroc
from medprobe.probes.training import STATS_ELEMENTS, classification_loss, standardiser

DEFAULTS = {
    "hidden": 128,  # instance embedding width (Linear(D, hidden) + ReLU + dropout)
    "attention": 64,  # width of the gated attention branches V (tanh) and U (sigmoid)
    "dropout": 0.25,
    "lr": 5e-4,  # Adam; Ilse et al.'s MNIST-bags setting, which also converges in few epochs on small CPU runs
    "weight_decay": 1e-4,  # Adam's L2 penalty, as Ilse et al.
    "epochs": 40,
    "batch_bags": 1,  # bags per optimisation step (Ilse et al. use one)
    "device": "cpu",  # or "cuda", "cuda:1": scores then match CPU's only to float tolerance
}

# Prediction processes contiguous bags in chunks of about this many instances.
_PREDICT_INSTANCES = 1 << 16


class GatedAttentionMIL(nn.Module):
    """Instances -> embeddings -> gated attention weights (softmax within each bag) -> bag embedding -> logits."""

    def __init__(self, in_features: int, n_outputs: int, hidden: int, attention: int, dropout: float):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.attention_v = nn.Linear(hidden, attention)
        self.attention_u = nn.Linear(hidden, attention)
        self.attention_w = nn.Linear(attention, 1)
        self.classifier = nn.Linear(hidden, n_outputs)

    def forward(self, features: torch.Tensor, bag_index: torch.Tensor, n_bags: int):
        """(n_bags, n_outputs) logits and the (n_instances,) attention weights, summing to one within each bag."""
        embedded = self.embed(features)
        gated = torch.tanh(self.attention_v(embedded)) * torch.sigmoid(self.attention_u(embedded))
        weights = segment_softmax(self.attention_w(gated).squeeze(1), bag_index, n_bags)
        bags = embedded.new_zeros(n_bags, embedded.shape[1]).index_add_(0, bag_index, weights[:, None] * embedded)
        return self.classifier(bags), weights


def segment_softmax(scores: torch.Tensor, segment: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Softmax of scores within each segment (segment[i] = the segment of scores[i])."""
    # Subtracting each segment's maximum leaves the softmax unchanged, so it carries no gradient.
    peak = scores.new_full((n_segments,), float("-inf")).scatter_reduce(0, segment, scores.detach(), reduce="amax")
    exponentials = torch.exp(scores - peak[segment])
    totals = scores.new_zeros(n_segments).index_add_(0, segment, exponentials)
    return exponentials / totals[segment]


def _bags(split, name: str, n_features: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Checked (features, offsets) of one split."""
    try:
        features, offsets = split
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (features, offsets) pair") from None
    features, offsets = np.asarray(features), np.asarray(offsets)  # a memory map stays one, unread
    if features.ndim != 2:
        raise ValueError(f"{name} features must have shape (n_instances, D), got {features.shape}")
    if n_features is not None and features.shape[1] != n_features:
        raise ValueError(f"{name} features have {features.shape[1]} dims, train has {n_features}")
    if offsets.ndim != 1 or len(offsets) < 2 or not np.issubdtype(offsets.dtype, np.integer):
        raise ValueError(f"{name} offsets must be n_bags + 1 integers, got {offsets.dtype} array {offsets.shape}")
    if offsets[0] != 0 or offsets[-1] != len(features):
        raise ValueError(f"{name} offsets must start at 0 and end at {len(features)} (the number of instances)")
    if (np.diff(offsets) <= 0).any():
        raise ValueError(f"{name} has an empty bag (offsets must increase strictly); attention needs an instance")
    chunk = max(1, STATS_ELEMENTS // max(1, features.shape[1]))
    for start in range(0, len(features), chunk):
        if not np.isfinite(features[start : start + chunk]).all():
            raise ValueError(f"{name} bag features contain NaN or infinite values")
    return features, offsets.astype(np.int64)


class _Bags:
    """One split's bags, served as standardised tensors on the device."""

    def __init__(self, features, offsets, scaler, device):
        self.features, self.offsets, self.scaler, self.device = features, offsets, scaler, device
        self.sizes = np.diff(offsets)

    def __len__(self) -> int:
        return len(self.sizes)

    def _tensors(self, rows, sizes: np.ndarray):
        mean, std = self.scaler
        x = (np.asarray(self.features[rows], dtype=np.float32) - mean) / std
        bag_index = np.repeat(np.arange(len(sizes)), sizes)
        return torch.from_numpy(x).to(self.device), torch.from_numpy(bag_index).to(self.device)

    def batch(self, bags: np.ndarray):
        """Features and bag index of the given bags (any order)."""
        starts, sizes = self.offsets[bags], self.sizes[bags]
        rows = np.repeat(starts - np.cumsum(sizes) + sizes, sizes) + np.arange(sizes.sum())
        return self._tensors(rows, sizes)

    def chunks(self):
        """(first bag, features, bag index) over consecutive bags, about _PREDICT_INSTANCES instances at a time."""
        start = 0
        while start < len(self):
            stop = start + 1
            while stop < len(self) and self.offsets[stop + 1] - self.offsets[start] <= _PREDICT_INSTANCES:
                stop += 1
            rows = slice(int(self.offsets[start]), int(self.offsets[stop]))
            yield start, *self._tensors(rows, self.sizes[start:stop])
            start = stop


@torch.no_grad()
def _predict(model: GatedAttentionMIL, bags: _Bags, task_type: str, keep_attention: bool = False):
    """(n_bags, L) probabilities (float64) and, if asked, each bag's attention weights (float32)."""
    model.eval()
    scores, attention = [], []
    for first, x, bag_index in bags.chunks():
        n_bags = int(bag_index[-1]) + 1
        logits, weights = model(x, bag_index, n_bags)
        logits = logits.double()
        probabilities = torch.softmax(logits, dim=1) if task_type == "multiclass" else torch.sigmoid(logits)
        scores.append(probabilities.cpu().numpy())
        if keep_attention:
            local = bags.offsets[first : first + n_bags + 1] - bags.offsets[first]
            attention.extend(np.split(weights.cpu().numpy(), local[1:-1]))
    return np.concatenate(scores), attention


def _settings(params: dict) -> dict:
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown MIL parameters {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    settings = {**DEFAULTS, **params}
    for key in ("hidden", "attention", "epochs", "batch_bags"):
        if int(settings[key]) < 1:
            raise ValueError(f"MIL parameter {key} must be >= 1, got {settings[key]}")
    if not 0 <= settings["dropout"] < 1:
        raise ValueError(f"MIL parameter dropout must lie in [0, 1), got {settings['dropout']}")
    return settings


def run_mil(train, y_train, val, y_val, test, params: dict, task_type: str, seed: int) -> tuple[np.ndarray, dict]:
    """Train gated-attention MIL on train bags, pick the epoch on val, score test bags.

    train, val, test: (features (n_instances, D), offsets (n_bags + 1,)) as the module describes. Targets as
    the other probes: binary/multilabel (n_bags, L) 0/1 with -1 for a missing label (left out of the BCE
    loss and of the validation AUROC), multiclass (n_bags,) class indices (cross-entropy; the number of
    classes is max(train, val) + 1). params override DEFAULTS (hidden 128, attention 64, dropout 0.25,
    lr 5e-4, weight_decay 1e-4, epochs 40, batch_bags 1, device "cpu"); an unknown key is an error.

    Returns the test probabilities (n_test_bags, L) (sigmoid per label, or softmax over classes) and info:
    chosen_epoch (1-based), val_auroc and train_loss per epoch, attention (one float32 array of weights per
    test bag, summing to one, in the bag's instance order; not JSON-serialisable) and the resolved params.
    Raises ValueError for malformed bags, non-finite features or malformed targets, and when validation
    AUROC is undefined (every label has one class in val).
    """
    settings = _settings(params)
    train_x, train_offsets = _bags(train, "train")
    val_x, val_offsets = _bags(val, "val", train_x.shape[1])
    test_x, test_offsets = _bags(test, "test", train_x.shape[1])
    y_train, y_val = np.asarray(y_train), np.asarray(y_val)
    if task_type == "multiclass":
        n_outputs = int(max(y_train.max(), y_val.max())) + 1
    else:
        n_outputs = y_train.shape[1] if y_train.ndim == 2 else 0
    for name, y, offsets in (("train", y_train, train_offsets), ("val", y_val, val_offsets)):
        label_indicator(y, n_outputs, task_type)
        if len(y) != len(offsets) - 1:
            raise ValueError(f"{name} has {len(offsets) - 1} bags but {len(y)} targets")
    # Checked before training: the epoch choice needs a label with both classes among val's known targets.
    positive, known = label_indicator(y_val, n_outputs, task_type)
    if not ((positive & known).any(axis=0) & (~positive & known).any(axis=0)).any():
        raise ValueError("validation macro AUROC is undefined (every label has one class in val): no epoch to choose")

    device = torch.device(settings["device"])
    scaler = standardiser(train_x)
    train_bags, val_bags, test_bags = (_Bags(x, o, scaler, device) for x, o in
                                       ((train_x, train_offsets), (val_x, val_offsets), (test_x, test_offsets)))
    targets = torch.from_numpy(y_train.astype(np.int64)).to(device)
    rng = np.random.Generator(np.random.PCG64(seed))
    fork_devices = [] if device.type == "cpu" else [device.index if device.index is not None else 0]
    with torch.random.fork_rng(devices=fork_devices):  # seeds this call's RNG without touching the caller's
        torch.manual_seed(seed)
        model = GatedAttentionMIL(train_x.shape[1], n_outputs, int(settings["hidden"]), int(settings["attention"]),
                                  float(settings["dropout"])).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
        val_auroc, train_loss, best_state, best_epoch = [], [], None, 0
        for epoch in range(1, int(settings["epochs"]) + 1):
            model.train()
            order = rng.permutation(len(train_bags))
            losses = []
            for start in range(0, len(order), int(settings["batch_bags"])):
                batch = order[start : start + int(settings["batch_bags"])]
                x, bag_index = train_bags.batch(batch)
                logits, _ = model(x, bag_index, len(batch))
                loss = classification_loss(logits, targets[torch.from_numpy(batch).to(device)], task_type)
                if loss is None:
                    continue
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            train_loss.append(float(np.mean(losses)) if losses else float("nan"))
            val_auroc.append(macro_auroc(y_val, _predict(model, val_bags, task_type)[0], task_type))
            if best_state is None or val_auroc[-1] > val_auroc[best_epoch - 1]:
                best_epoch = epoch
                best_state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        model.load_state_dict(best_state)
        test_scores, attention = _predict(model, test_bags, task_type, keep_attention=True)
    info = {
        "chosen_epoch": best_epoch,
        "val_auroc": val_auroc,
        "train_loss": train_loss,
        "attention": attention,
        "params": {key: settings[key] for key in DEFAULTS},
    }
    return test_scores, info
