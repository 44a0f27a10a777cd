"""Patch-token grids for segmentation: images -> last-layer patch tokens (B, D, h, w), cached as float16.

The tokens are those DINOv2's linear segmentation reads: the last block through the model's final norm, prefix
tokens (CLS, registers) dropped, laid out on the patch grid. timm's `forward_intermediates` does exactly that
(norm=True applies the final norm; num_prefix_tokens says how many leading tokens to drop; NCHW reshapes to the grid
the model saw, dynamic image size included), so the grid equals `forward_features` minus its prefix, reshaped.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from medprobe.atomic import atomic_path
from medprobe.backbones.load import HFDinov2Backbone, OpenClipTimmBackbone, PixelBackbone, TokenModule
from medprobe.features.extract import ArrayBatches, prepare


def timm_patch_grid(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """A timm ViT on normalised images -> final-normed patch tokens (B, D, h, w)."""
    (grid,) = model.forward_intermediates(images, indices=1, norm=True, output_fmt="NCHW", intermediates_only=True)
    return grid


def hf_dinov2_patch_grid(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """transformers Dinov2Model (RAD-DINO): last_hidden_state is normed already; drop CLS and any registers."""
    tokens = model(pixel_values=images).last_hidden_state
    prefix = 1 + getattr(model.config, "num_register_tokens", 0)
    h, w = images.shape[-2] // model.config.patch_size, images.shape[-1] // model.config.patch_size
    return tokens[:, prefix:].transpose(1, 2).reshape(len(tokens), -1, h, w)


def patch_grid(module: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Last-layer patch tokens of a backbone as a grid (B, D, h, w), h = H // patch_size.

    module: a loaded backbone (medprobe.backbones.load; images float in [0, 1], normalised inside as for every other
    feature) or a bare timm ViT (images already normalised, as its forward_features takes them). The pixel baseline
    gives its pooled pixels (B, C, H / pool, W / pool). Raises ValueError for a backbone with no patch tokens here
    (ConvNeXt, open_clip's own ViT tower).
    """
    if isinstance(module, PixelBackbone):
        return F.avg_pool2d(images, module.pool)
    if isinstance(module, TokenModule):
        images, inner = module.normalise(images), module.model
        if isinstance(module, HFDinov2Backbone):
            return hf_dinov2_patch_grid(inner, images)
        if isinstance(module, OpenClipTimmBackbone):
            inner = inner.trunk  # patch tokens stay in the trunk's space: the CLIP projection is for the CLS only
    else:
        inner = module
    if not (hasattr(inner, "num_prefix_tokens") and hasattr(inner, "forward_intermediates")):
        raise ValueError(f"patch_grid: {type(module).__name__} ({type(inner).__name__}) has no ViT patch tokens; "
                         "segmentation heads need a timm ViT, transformers Dinov2Model or the pixel baseline")
    return timm_patch_grid(inner, images)


@torch.inference_mode()
def extract_patch_grids(array_path: str | Path, out_path: str | Path, module: nn.Module, res: int, batch_size: int,
                        device: torch.device, precision: str, num_workers: int = 0,
                        desc: str = "patch grids") -> tuple[int, ...]:
    """Memory-mapped uint8 images (N, C, S, S) -> float16 patch grids (N, D, h, w) at out_path; returns the shape.

    Images are resized to res on the device as for global features. The output is written as a .npy memmap batch by
    batch, so it never has to fit in memory, and appears at out_path only once complete.
    """
    batches = ArrayBatches(array_path, batch_size)
    probe = patch_grid(module, torch.zeros(1, batches.channels, res, res, device=device))
    shape = (batches.length, *probe.shape[1:])
    loader = DataLoader(batches, batch_size=None, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    with atomic_path(out_path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape)
        row = 0
        with tqdm(total=batches.length, desc=desc, unit="img") as progress:
            for batch in loader:
                with autocast:
                    grid = patch_grid(module, prepare(batch, res, device))
                out[row:row + len(batch)] = grid.float().to(torch.float16).cpu().numpy()
                row += len(batch)
                progress.update(len(batch))
        out.flush()
        del out
    return shape
