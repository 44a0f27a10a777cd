"""Whole-slide tile features: tiles read from the slides in DataLoader workers -> frozen model -> float16.

Every slide of a call goes into one feature array, slide after slide, so slide i's tiles are one contiguous
block of rows. A batch is a run of the global tile list and may span slides: batches stay full and the
accelerator sees the same batch size whatever the slides' tile counts. Each worker opens the slides it needs
itself (an OpenSlide handle is a C object that neither pickles nor survives a fork safely) and keeps a few
open (each with OpenSlide's own bounded tile cache); only `prefetch_factor` batches per worker are ever in
flight and features go straight to a memory-mapped file, so memory does not grow with the slides' size or number.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from medprobe.features.extract import write_features
from medprobe.io.slides import ReadPlan, open_slide, read_tile

Slides = list[tuple[str | Path, ReadPlan, pd.DataFrame]]


class TileBatches(Dataset):
    """Item b is the b-th batch of the tiles of all slides (in order), as uint8 (B, 3, T, T)."""

    def __init__(self, slides: Slides, batch_size: int, max_open: int = 4):
        sizes = {plan.tile_size for _, plan, _ in slides}
        if len(sizes) > 1:
            raise ValueError(f"slides extracted together must share a tile size to be batched, got {sorted(sizes)}")
        self.tile_size = sizes.pop() if sizes else 0
        self.paths = [str(path) for path, _, _ in slides]
        self.plans = [plan for _, plan, _ in slides]
        self.slide_of = np.repeat(np.arange(len(slides), dtype=np.int32), [len(tiles) for _, _, tiles in slides])
        self.xy = np.concatenate([tiles[["x", "y"]].to_numpy(np.int64) for _, _, tiles in slides] or
                                 [np.empty((0, 2), np.int64)])
        self.length, self.batch_size, self.max_open = len(self.xy), batch_size, max_open
        self._handles: OrderedDict = OrderedDict()
        self._pid = None

    def __len__(self) -> int:
        return (self.length + self.batch_size - 1) // self.batch_size

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handles": OrderedDict(), "_pid": None}  # handles stay in their process

    def _slide(self, index: int):
        """A small LRU of open slides, owned by the current process (reset after a fork)."""
        if self._pid != os.getpid():
            self._handles, self._pid = OrderedDict(), os.getpid()
        if index in self._handles:
            self._handles.move_to_end(index)
        else:
            self._handles[index] = open_slide(self.paths[index])
            if len(self._handles) > self.max_open:
                self._handles.popitem(last=False)[1].close()
        return self._handles[index]

    def __getitem__(self, index: int) -> torch.Tensor:
        start = index * self.batch_size
        stop = min(start + self.batch_size, self.length)
        batch = np.empty((stop - start, 3, self.tile_size, self.tile_size), dtype=np.uint8)
        for row, i in enumerate(range(start, stop)):
            s, (x, y) = self.slide_of[i], self.xy[i]
            batch[row] = read_tile(self._slide(s), int(x), int(y), self.plans[s]).transpose(2, 0, 1)
        return torch.from_numpy(batch)


def choose_tile_workers(requested: int | str, device: torch.device) -> int:
    """Reader processes for tiles.

    On CPU "auto" is 0, measured with extract_tiles on 2 otherwise idle cores (vit_tiny_random at 224 px, ~20 ms
    per tile; JPEG slides; back-to-back runs paired): with tiles read at a pyramid level without resizing (~2 ms
    per tile) 1 reader ran at 0.86x the speed of none and 2 readers at 0.82x; with every tile read at level 0 and
    resized (~8 ms) 1 reader ran at 0.98x and 2 at 1.05x. A reader takes cores from the model's threads, a cost
    that grows with the model while the reading it hides does not. (On a loaded machine readers seemed to win,
    only because more processes get a larger share of busy cores.) On CUDA the model needs no CPU, so several
    readers keep the device fed.
    """
    if requested != "auto":
        return int(requested)
    if device.type == "cpu":
        return 0
    return min(8, len(os.sched_getaffinity(0)))


def tile_loader(batches: TileBatches, num_workers: int, device: torch.device) -> DataLoader:
    return DataLoader(batches, batch_size=None, shuffle=False, num_workers=num_workers,
                      pin_memory=device.type == "cuda", prefetch_factor=2 if num_workers else None)


@torch.inference_mode()
def extract_tiles(slides: Slides, out_path: str | Path, module: torch.nn.Module, res: int, batch_size: int,
                  num_workers: int, device: torch.device, precision: str, desc: str = "tiles") -> tuple[int, ...]:
    """Writes float16 features (total tiles, n_tokens, dim) of all slides' tiles to out_path; returns the shape.

    slides: (path, ReadPlan, tiles with columns x, y) in output order; slide i's rows are
    sum(len(tiles) of slides before i) .. + len(its tiles).
    """
    for path, _, _ in slides:  # a missing or unreadable file fails here, as a SlideError, before any worker starts
        open_slide(path).close()
    batches = TileBatches(slides, batch_size)
    return write_features(tile_loader(batches, num_workers, device), batches.length, 3, out_path, module, res, device,
                          precision, desc, unit="tile")
