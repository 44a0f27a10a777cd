"""Backbone registry: one plain-data entry per backbone, one loader per source.

Entry keys: source ("timm" | "pixels"), model (timm architecture name), pretrained (bool),
init_seed (random-init controls), revision, patch_size, embed_dim, tokens (feature kinds written),
license. Random-init entries say so in their name: their numbers are controls, never results.
"""

from __future__ import annotations

from medprobe.registry import lookup

BACKBONES: dict[str, dict] = {
    "vit_tiny_random": {
        "source": "timm",
        "model": "vit_tiny_patch16_224",
        "pretrained": False,
        "init_seed": 0,
        "patch_size": 16,
        "embed_dim": 192,
        "tokens": ["cls", "patch_mean"],
        "license": "Apache-2.0 (architecture only; random weights)",
    },
    "vit_small_random": {
        "source": "timm",
        "model": "vit_small_patch16_224",
        "pretrained": False,
        "init_seed": 0,
        "patch_size": 16,
        "embed_dim": 384,
        "tokens": ["cls", "patch_mean"],
        "license": "Apache-2.0 (architecture only; random weights)",
    },
    "vit_base_random": {
        "source": "timm",
        "model": "vit_base_patch16_224",
        "pretrained": False,
        "init_seed": 0,
        "patch_size": 16,
        "embed_dim": 768,
        "tokens": ["cls", "patch_mean"],
        "license": "Apache-2.0 (architecture only; random weights)",
    },
    "vit_large_random": {
        "source": "timm",
        "model": "vit_large_patch16_224",
        "pretrained": False,
        "init_seed": 0,
        "patch_size": 16,
        "embed_dim": 1024,
        "tokens": ["cls", "patch_mean"],
        "license": "Apache-2.0 (architecture only; random weights)",
    },
    "dinov2_vits14_random": {
        "source": "timm",
        "model": "vit_small_patch14_dinov2",
        "pretrained": False,
        "init_seed": 0,
        "patch_size": 14,
        "embed_dim": 384,
        "tokens": ["cls", "patch_mean"],
        "license": "Apache-2.0 (architecture only; random weights)",
    },
    "dinov3_vits16_random": {
        "source": "timm",
        "model": "vit_small_patch16_dinov3",
        "pretrained": False,
        "init_seed": 0,
        "patch_size": 16,
        "embed_dim": 384,
        "tokens": ["cls", "patch_mean"],
        "license": "DINOv3 license (architecture only; random weights)",
    },
    "pixels": {
        "source": "pixels",
        "pool": 8,
        "tokens": ["pixels"],
        "license": "n/a",
    },
}


def get_backbone(name: str) -> dict:
    return lookup(BACKBONES, "backbone", name)
