"""Backbone loaders: a registry entry -> a module mapping images to named feature tokens.

Every loaded backbone takes a float batch (B, 1, H, W) in [0, 1] (grayscale, as medical images
are) and returns {token_name: (B, D)}. Channel replication and normalisation happen inside, from
the model's own pretrained config, so the extractor never has to know which model it runs.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from medprobe.backbones.registry import get_backbone


def state_dict_sha256(module: nn.Module) -> str:
    """Hash of the weights as they are in memory: names, shapes, dtypes and bytes, in order."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


class TimmBackbone(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        config = model.pretrained_cfg
        self.register_buffer("mean", torch.tensor(config["mean"]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(config["std"]).view(1, 3, 1, 1))
        self.num_prefix_tokens = getattr(model, "num_prefix_tokens", 1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (images.expand(-1, 3, -1, -1) - self.mean) / self.std
        tokens = self.model.forward_features(x)
        return {"cls": tokens[:, 0], "patch_mean": tokens[:, self.num_prefix_tokens:].mean(dim=1)}


class PixelBackbone(nn.Module):
    """Raw-pixel baseline: the image average-pooled by `pool`, flattened."""

    def __init__(self, pool: int):
        super().__init__()
        self.pool = pool

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pixels": F.avg_pool2d(images, self.pool).flatten(1)}


def load_backbone(name: str) -> tuple[nn.Module, dict]:
    """Returns (module in eval mode, identity for provenance)."""
    entry = get_backbone(name)
    if entry["source"] == "pixels":
        return PixelBackbone(entry["pool"]).eval(), {"name": name, "source": "pixels",
                                                     "pool": entry["pool"], "weights": "none"}
    if entry["source"] != "timm":
        raise ValueError(f"backbone '{name}': unsupported source '{entry['source']}'")
    import timm

    if entry["pretrained"]:
        raise NotImplementedError(f"backbone '{name}': pretrained weights are not supported yet")
    torch.manual_seed(entry["init_seed"])
    # dynamic_img_size: one set of weights at every resolution (position embeddings interpolated),
    # so a resolution sweep compares the same model, not differently drawn random ones.
    model = timm.create_model(entry["model"], pretrained=False, num_classes=0, dynamic_img_size=True)
    backbone = TimmBackbone(model).eval()
    identity = {
        "name": name,
        "source": "timm",
        "model": entry["model"],
        "timm_version": timm.__version__,
        "weights": f"random init (torch seed {entry['init_seed']})",
        "weights_sha256": state_dict_sha256(model),
        "normalization": {"mean": list(model.pretrained_cfg["mean"]),
                          "std": list(model.pretrained_cfg["std"])},
    }
    return backbone, identity
