"""Segmentation heads trained on cached patch-token grids (frozen backbone), scored by their test label maps.

Heads, as the two studies define them:
- seg_linear: BatchNorm + 1x1 conv on the last-layer patch tokens, logits bilinearly upsampled to the mask size
  (DINOv2's linear segmentation, study B's linear head);
- seg_decoder (2-D): a light conv decoder, 3x3 conv to 128 channels, two x2 upsampling conv stages (64, 32), 1x1 to
  the classes, then bilinear upsampling to the mask size (study A's light 2-D decoder);
- seg_decoder (3-D): the axial slice grids of one volume stacked along z, (D, Z, h, w), through a light 3-D conv
  decoder (two 3x3x3 convs, 64 and 32 channels, 1x1x1 to the classes), logits upsampled in-plane (Z unchanged)
  to (Z, S, S) (study A's 3-D decoder over stacked slice features).

Training: Dice + cross-entropy (dice_ce_loss: softmax, one-hot targets, Dice pooled over the batch so that empty
slices do not dominate), Adam, a fixed number of epochs; after each epoch the validation set is predicted and the
epoch with the best mean foreground Dice (earliest on ties) is kept. The test set is only predicted. Features are
float16 memmaps read one minibatch at a time, so neither the grids nor the upsampled logits of a whole split are
ever held in memory. The same inputs, params and seed give byte-identical predictions on CPU (seeded initialisation, a
seeded numpy generator for batch order and z crops); on a GPU some backward kernels (bilinear upsampling) use
atomic adds, so results there can differ in the last bits between runs.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medprobe.features.extract import choose_device

DEFAULTS_2D = {"epochs": 40, "lr": 1e-3, "batch_size": 16, "weight_decay": 0.0, "device": "auto"}
# 3-D: one volume per step; volumes deeper than z_crop train on a random run of z_crop slices and are predicted in
# chunks of z_crop slices (exact: the decoder's receptive field is covered by Decoder3d.halo extra slices).
DEFAULTS_3D = {"epochs": 60, "lr": 1e-3, "z_crop": 64, "weight_decay": 0.0, "device": "auto"}


def conv_bn_relu(conv: type[nn.Module], norm: type[nn.Module], c_in: int, c_out: int) -> list[nn.Module]:
    return [conv(c_in, c_out, kernel_size=3, padding=1, bias=False), norm(c_out), nn.ReLU(inplace=True)]


class LinearHead(nn.Sequential):
    def __init__(self, dim: int, n_classes: int):
        super().__init__(nn.BatchNorm2d(dim), nn.Conv2d(dim, n_classes, kernel_size=1))


class Decoder2d(nn.Sequential):
    def __init__(self, dim: int, n_classes: int):
        def up() -> nn.Module:
            return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

        super().__init__(*conv_bn_relu(nn.Conv2d, nn.BatchNorm2d, dim, 128),
                         up(), *conv_bn_relu(nn.Conv2d, nn.BatchNorm2d, 128, 64),
                         up(), *conv_bn_relu(nn.Conv2d, nn.BatchNorm2d, 64, 32),
                         nn.Conv2d(32, n_classes, kernel_size=1))


class Decoder3d(nn.Sequential):
    halo = 2  # slices each side that change one output slice: two 3x3x3 convs

    def __init__(self, dim: int, n_classes: int):
        super().__init__(*conv_bn_relu(nn.Conv3d, nn.BatchNorm3d, dim, 64),
                         *conv_bn_relu(nn.Conv3d, nn.BatchNorm3d, 64, 32),
                         nn.Conv3d(32, n_classes, kernel_size=1))


HEADS_2D = {"seg_linear": LinearHead, "seg_decoder": Decoder2d}


def upsample(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, *size) bilinear; (B, C, Z, h, w) -> (B, C, Z, *size), each slice in-plane, which is
    trilinear interpolation with Z unchanged."""
    if logits.ndim == 4:
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    b, c, z, h, w = logits.shape
    planes = logits.permute(0, 2, 1, 3, 4).reshape(b * z, c, h, w)
    planes = F.interpolate(planes, size=size, mode="bilinear", align_corners=False)
    return planes.reshape(b, z, c, *size).permute(0, 2, 1, 3, 4)


def resolve_params(params: dict | None, defaults: dict, where: str) -> dict:
    unknown = set(params or {}) - set(defaults)
    if unknown:
        raise ValueError(f"{where}: unknown params {sorted(unknown)}; known: {sorted(defaults)}")
    return defaults | dict(params or {})


def check_masks(masks, n_classes: int, what: str) -> None:
    top = max((int(np.max(m)) for m in masks), default=0)
    if top >= n_classes:
        raise ValueError(f"{what}: label {top} found, but n_classes is {n_classes}")


def confusion(pred: np.ndarray, truth: np.ndarray, n_classes: int, rows: int = 64) -> np.ndarray:
    """(n_classes, n_classes) voxel counts, truth along axis 0; accumulated over chunks of rows."""
    counts = np.zeros(n_classes * n_classes, dtype=np.int64)
    for start in range(0, len(pred), rows):
        flat = np.asarray(truth[start:start + rows], dtype=np.int64) * n_classes + pred[start:start + rows]
        counts += np.bincount(flat.ravel(), minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def mean_foreground_dice(counts: np.ndarray) -> float:
    """Dice per foreground class, pooled over all validation voxels, averaged over the classes present in the truth
    or the prediction; 1.0 when neither has any foreground."""
    tp = np.diag(counts)[1:].astype(np.float64)
    size = counts.sum(0)[1:] + counts.sum(1)[1:]
    present = size > 0
    return float(np.mean(2 * tp[present] / size[present])) if present.any() else 1.0


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """Soft Dice (pooled over the batch and space, averaged over classes, background included) plus cross-entropy.

    logits (B, C, *spatial), target (B, 1, *spatial) class indices. The value of MONAI's
    DiceCELoss(softmax=True, to_onehot_y=True, batch=True) computed by the same operations, so that it is
    byte-identical with its gradients (tested against MONAI): importing MONAI costs about 6 s, most of a short job.
    """
    probabilities = torch.softmax(logits, 1)
    one_hot = torch.zeros_like(probabilities).scatter_(1, target.long(), 1)
    axes = [0, *range(2, logits.ndim)]
    tp = torch.sum(probabilities * one_hot, dim=axes)
    fp = (torch.sum(probabilities, dim=axes) - tp) * 0.5
    fn = (torch.sum(one_hot, dim=axes) - tp) * 0.5
    dice = torch.mean(1 - (2 * tp + smooth) / (2 * (tp + fp + fn) + smooth))
    return dice + F.cross_entropy(logits, target.squeeze(1).long())


def seeded_head(build, dim: int, n_classes: int, seed: int, device: torch.device) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(dim, n_classes).to(device)


def fit(model: nn.Module, epochs: int, lr: float, weight_decay: float, train_steps, validate) -> dict:
    """Train for `epochs`, validating after each; the model ends with the weights of the best validation epoch."""
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses, val_dice, best_state = [], [], None
    for _ in range(epochs):
        model.train()
        total, steps = 0.0, 0
        for x, y in train_steps():
            optimiser.zero_grad(set_to_none=True)
            loss = dice_ce_loss(upsample(model(x), y.shape[-2:]), y)
            loss.backward()
            optimiser.step()
            total, steps = total + loss.item(), steps + 1
        losses.append(total / max(steps, 1))
        model.eval()
        val_dice.append(validate())
        if val_dice[-1] > max(val_dice[:-1], default=-math.inf):
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    best = int(np.argmax(val_dice))
    return {"train_loss": losses, "val_dice": val_dice, "best_epoch": best + 1, "best_val_dice": val_dice[best],
            "n_parameters": sum(p.numel() for p in model.parameters())}


# --- 2-D ----------------------------------------------------------------------------------------------------------


def to_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.array(array)).to(device).float()  # a copy: memmaps are read-only


@torch.no_grad()
def predict_2d(model: nn.Module, x, size: tuple[int, int], batch_size: int, device: torch.device) -> np.ndarray:
    out = np.empty((len(x), *size), dtype=np.uint8)
    for start in range(0, len(x), batch_size):
        logits = upsample(model(to_tensor(x[start:start + batch_size], device)), size)
        out[start:start + batch_size] = logits.argmax(1).to(torch.uint8).cpu().numpy()
    return out


def run_seg_2d(head: str, x_train, m_train, x_val, m_val, x_test, params: dict | None, n_classes: int,
               seed: int) -> tuple[np.ndarray, dict]:
    """Train a 2-D head on patch grids (N, D, h, w) with masks (N, S, S); returns (test labels uint8 (N, S, S), info).

    head: "seg_linear" | "seg_decoder". params (defaults DEFAULTS_2D): epochs, lr, batch_size, weight_decay,
    device ("auto" | "cpu" | "cuda"). info: params, per-epoch train_loss and val_dice (mean foreground Dice),
    best_epoch (1-based, the one predicting test), best_val_dice, n_parameters, device. Raises ValueError for an
    unknown head or param, mismatched shapes, or a label >= n_classes.
    """
    if head not in HEADS_2D:
        raise ValueError(f"unknown 2-D segmentation head '{head}'; known: {sorted(HEADS_2D)}")
    params = resolve_params(params, DEFAULTS_2D, head)
    if not 2 <= n_classes <= 256:
        raise ValueError(f"{head}: n_classes must be in 2..256 (uint8 label maps), got {n_classes}")
    size = tuple(m_train.shape[1:])
    for x, m, split in ((x_train, m_train, "train"), (x_val, m_val, "val")):
        if x.ndim != 4 or m.ndim != 3 or len(x) != len(m) or tuple(m.shape[1:]) != size or not len(x):
            raise ValueError(f"{head}: {split} grids {x.shape} and masks {m.shape} do not match as non-empty "
                             f"(N, D, h, w) and (N, {size[0]}, {size[1]})")
        check_masks([m], n_classes, f"{head} {split} masks")
    device = choose_device(params["device"])
    model = seeded_head(HEADS_2D[head], x_train.shape[1], n_classes, seed, device)
    rng = np.random.default_rng(seed)
    batch_size = int(params["batch_size"])

    def train_steps():
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), batch_size):
            rows = np.sort(order[start:start + batch_size])  # sorted: sequential reads from the memmap
            yield to_tensor(x_train[rows], device), torch.from_numpy(m_train[rows]).to(device).long().unsqueeze(1)

    def validate():
        return mean_foreground_dice(confusion(predict_2d(model, x_val, size, batch_size, device), m_val, n_classes))

    info = fit(model, int(params["epochs"]), float(params["lr"]), float(params["weight_decay"]), train_steps, validate)
    pred = predict_2d(model, x_test, size, batch_size, device)
    return pred, {"head": head, "params": params, "device": str(device), **info}


# --- 3-D ----------------------------------------------------------------------------------------------------------


def volume_tensor(volume, device: torch.device) -> torch.Tensor:
    """Slice grids (Z, D, h, w) -> (1, D, Z, h, w)."""
    return to_tensor(volume, device).permute(1, 0, 2, 3).unsqueeze(0)


@torch.no_grad()
def predict_3d(model: Decoder3d, volume, size: tuple[int, int], chunk: int, device: torch.device) -> np.ndarray:
    """Labels (Z, S, S), decoded chunk slices at a time with `halo` neighbours each side, so equal to one pass."""
    depth, halo = len(volume), model.halo
    out = np.empty((depth, *size), dtype=np.uint8)
    for start in range(0, depth, chunk):
        lo, hi = max(0, start - halo), min(depth, start + chunk + halo)
        logits = model(volume_tensor(volume[lo:hi], device))[:, :, start - lo:start - lo + chunk]
        out[start:start + chunk] = upsample(logits, size).argmax(1)[0].to(torch.uint8).cpu().numpy()
    return out


def run_seg_3d(x_train: list, m_train: list, x_val: list, m_val: list, x_test: list, params: dict | None,
               n_classes: int, seed: int) -> tuple[list[np.ndarray], dict]:
    """Train the 3-D decoder on volumes given as slice grids (Z, D, h, w) with label volumes (Z, S, S); returns
    (one uint8 label volume (Z, S, S) per test volume, info).

    params (defaults DEFAULTS_3D): epochs, lr, z_crop, weight_decay, device. info as run_seg_2d's, head
    "seg_decoder (3-D)". Raises ValueError for an unknown param, mismatched shapes, or a label >= n_classes.
    """
    params = resolve_params(params, DEFAULTS_3D, "seg_decoder (3-D)")
    if not 2 <= n_classes <= 256:
        raise ValueError(f"seg_decoder (3-D): n_classes must be in 2..256 (uint8 label maps), got {n_classes}")
    if not x_train or not x_val:
        raise ValueError("seg_decoder (3-D): train and val need at least one volume each")
    size, dim = tuple(m_train[0].shape[1:]), x_train[0].shape[1]
    for xs, ms, split in ((x_train, m_train, "train"), (x_val, m_val, "val")):
        if len(xs) != len(ms):
            raise ValueError(f"seg_decoder (3-D): {len(xs)} {split} volumes but {len(ms)} label volumes")
        for i, (x, m) in enumerate(zip(xs, ms)):
            if x.ndim != 4 or x.shape[1] != dim or m.shape != (len(x), *size):
                raise ValueError(f"seg_decoder (3-D): {split} volume {i}: grids {x.shape} and labels {m.shape} do not "
                                 f"match (Z, {dim}, h, w) and (Z, {size[0]}, {size[1]})")
        check_masks(ms, n_classes, f"seg_decoder (3-D) {split} labels")
    device = choose_device(params["device"])
    model = seeded_head(Decoder3d, dim, n_classes, seed, device)
    rng = np.random.default_rng(seed)
    chunk = int(params["z_crop"])

    def train_steps():
        for i in rng.permutation(len(x_train)):
            start = int(rng.integers(0, len(x_train[i]) - chunk + 1)) if len(x_train[i]) > chunk else 0
            labels = torch.from_numpy(np.asarray(m_train[i][start:start + chunk])).to(device).long()
            yield volume_tensor(x_train[i][start:start + chunk], device), labels[None, None]

    def validate():
        counts = sum(confusion(predict_3d(model, x, size, chunk, device), m, n_classes) for x, m in zip(x_val, m_val))
        return mean_foreground_dice(counts)

    info = fit(model, int(params["epochs"]), float(params["lr"]), float(params["weight_decay"]), train_steps, validate)
    preds = [predict_3d(model, x, size, chunk, device) for x in x_test]
    return preds, {"head": "seg_decoder (3-D)", "params": params, "device": str(device), **info}
