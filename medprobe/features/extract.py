"""Feature extraction: memory-mapped uint8 images -> resize/normalise -> frozen model -> float16.

Batches are sliced straight from the memory-mapped split array (contiguous reads, no per-image
files) by DataLoader workers; resizing runs batched on the compute device, so with a GPU the
model never waits on Python-level per-image work.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from medprobe.atomic import atomic_path


class ArrayBatches(Dataset):
    """Item b is the b-th batch of a memory-mapped (N, C, S, S) uint8 array, as a tensor."""

    def __init__(self, path: str | Path, batch_size: int):
        self.path, self.batch_size = str(path), batch_size
        shape = np.load(self.path, mmap_mode="r").shape
        self.length, self.channels = shape[0], shape[1]
        self._array = None  # opened lazily so each worker process maps the file itself

    def __len__(self) -> int:
        return (self.length + self.batch_size - 1) // self.batch_size

    def __getitem__(self, index: int) -> torch.Tensor:
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
        start = index * self.batch_size
        return torch.from_numpy(np.array(self._array[start:start + self.batch_size]))  # copy: writable, in RAM


def choose_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"extract.device is '{requested}' but CUDA is not available here")
    return device


def choose_precision(requested: str, device: torch.device) -> str:
    """bf16 autocast on GPUs; fp32 on CPUs, where bf16 is several times slower without AVX512-BF16."""
    if requested == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return requested


def choose_num_workers(requested: int | str, device: torch.device) -> int:
    """On CPU the model already uses every core, so a loader process only competes with it."""
    if requested == "auto":
        return 0 if device.type == "cpu" else 4
    return int(requested)


def prepare(batch: torch.Tensor, res: int, device: torch.device) -> torch.Tensor:
    """uint8 (B, C, S, S) -> float (B, C, res, res) in [0, 1] on the device."""
    images = batch.to(device, non_blocking=True).float().div_(255.0)
    if images.shape[-1] != res:
        images = F.interpolate(images, size=(res, res), mode="bilinear", antialias=True,
                               align_corners=False)
    return images


@torch.inference_mode()
def token_shapes(module: torch.nn.Module, channels: int, res: int, device: torch.device) -> dict[str, int]:
    probe = torch.zeros(1, channels, res, res, device=device)
    return {name: t.shape[1] for name, t in module(probe).items()}


@torch.inference_mode()
def write_features(batches: Iterable[torch.Tensor], n_rows: int, channels: int, out_path: str | Path,
                   module: torch.nn.Module, res: int, device: torch.device, precision: str, desc: str,
                   unit: str) -> tuple[int, ...]:
    """uint8 batches in row order -> float16 (n_rows, n_tokens, dim) written to out_path; returns the shape.

    The one loop behind every extraction (images, slices, slide tiles): batches go straight from the loader
    through the model into a memory-mapped output, so memory holds a batch whatever the dataset's size.
    """
    shapes = token_shapes(module, channels, res, device)
    if len(set(shapes.values())) != 1:
        raise ValueError(f"token dimensions differ ({shapes}); cannot stack them")
    shape = (n_rows, len(shapes), next(iter(shapes.values())))
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16)
                if precision == "bf16" else nullcontext())
    with atomic_path(out_path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape)
        row = 0
        with tqdm(total=n_rows, desc=desc, unit=unit) as progress:
            for batch in batches:
                with autocast:
                    tokens = module(prepare(batch, res, device))
                stacked = torch.stack([tokens[name].float() for name in shapes], dim=1)
                out[row:row + len(batch)] = stacked.to(torch.float16).cpu().numpy()
                row += len(batch)
                progress.update(len(batch))
        out.flush()
        del out
    return shape


def extract_array(array_path: str | Path, out_path: str | Path, module: torch.nn.Module, res: int,
                  batch_size: int, num_workers: int, device: torch.device, precision: str,
                  desc: str = "extract") -> tuple[int, ...]:
    """Writes float16 features (N, n_tokens, dim) of a memory-mapped uint8 array to out_path; returns the shape."""
    batches = ArrayBatches(array_path, batch_size)
    loader = DataLoader(batches, batch_size=None, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    return write_features(loader, batches.length, batches.channels, out_path, module, res, device, precision,
                          desc, unit="img")
