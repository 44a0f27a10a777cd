"""Whole-slide tile feature throughput in tiles/s, next to tile reading alone and the model alone, in one run.

Slides are generated JPEG pyramidal TIFFs (medprobe.io.slide_writer) at --base-mpp, tiled on a full grid
at --target-mpp. Rates, in tiles per second:
  reading     = slides -> DataLoader workers -> uint8 tile batches (medprobe.features.tiles.TileBatches),
                for each worker count in --workers
  end-to-end  = the same reading -> resize/normalise -> model -> float16 features written to a memory-mapped
                .npy (medprobe.features.tiles.extract_tiles, what the pipeline runs), per worker count
  model-only  = the same backbone on the same tiles, preloaded as ready float tensors of the final size
Each round runs every measurement once, in a rotated order, so load from other processes hits all alike;
medians over rounds are reported, ratios as the median of per-round ratios. The last line printed is the
ratio end-to-end / model-only at the worker count choose_tile_workers("auto") picks.
--n-levels 1 writes single-level slides, so every tile is read at level 0 and resized (the costly case
of scanners whose pyramid lacks the wanted downsample).

    python benchmarks/wsi_throughput.py [--backbone vit_tiny_random] [--res 224] [--tiles 384] ...
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from extract_throughput import model_only
from PIL import Image

from medprobe.backbones.load import load_backbone
from medprobe.features.extract import choose_device, choose_precision, prepare
from medprobe.features.tiles import TileBatches, choose_tile_workers, extract_tiles, tile_loader
from medprobe.io.slide_writer import write_pyramidal_tiff
from medprobe.io.slides import open_slide, read_plan


def synthetic_rgb(side: int, seed: int) -> np.ndarray:
    """Smooth colour fields plus fine noise: JPEG tiles of realistic size, not flat ones that decode for free."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, size=(side // 64 + 2, side // 64 + 2, 3), dtype=np.uint8))
    rgb = np.minimum(np.asarray(coarse.resize((side, side), Image.Resampling.BICUBIC)), 255 - 31)
    rgb += rng.integers(0, 32, size=rgb.shape, dtype=np.uint8)  # no overflow: capped at 224 above
    return rgb


def make_slides(folder: Path, n_tiles: int, n_slides: int, args) -> list:
    """n_slides square slides whose full tile grids hold n_tiles in all."""
    per_slide = math.ceil(n_tiles / n_slides)
    per_side = math.ceil(math.sqrt(per_slide))
    side = math.ceil(per_side * args.tile_size * args.target_mpp / args.base_mpp)
    slides, left = [], n_tiles
    for i in range(n_slides):
        path = folder / f"slide_{i}.tiff"
        write_pyramidal_tiff(path, synthetic_rgb(side, i), mpp=args.base_mpp, n_levels=args.n_levels)
        slide = open_slide(path)
        plan = read_plan(slide, path, args.target_mpp, args.tile_size)
        slide.close()
        steps = np.arange(per_side) * plan.tile_size_level0
        y, x = np.meshgrid(steps, steps, indexing="ij")
        tiles = pd.DataFrame({"x": x.ravel().astype(np.int64), "y": y.ravel().astype(np.int64)})
        tiles = tiles.iloc[:min(per_slide, left)]
        left -= len(tiles)
        slides.append((path, plan, tiles))
    return slides


def reading_rate(slides: list, batch_size: int, workers: int, device) -> float:
    batches = TileBatches(slides, batch_size)  # fresh: no slide handle (or its tile cache) from an earlier pass
    start = time.perf_counter()
    for _ in tile_loader(batches, workers, device):
        pass
    return batches.length / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="vit_tiny_random")
    parser.add_argument("--res", type=int, default=224)
    parser.add_argument("--tiles", type=int, default=384, help="tiles in all, spread over --slides slides")
    parser.add_argument("--slides", type=int, default=3)
    parser.add_argument("--tile-size", type=int, default=224, help="tile side in pixels at --target-mpp")
    parser.add_argument("--base-mpp", type=float, default=0.25, help="the generated slides' level-0 µm/px")
    parser.add_argument("--target-mpp", type=float, default=0.5)
    parser.add_argument("--n-levels", type=int, default=None, help="pyramid levels written (default: down to ~512 px)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", default="0,1,2", help="reader process counts to compare")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = choose_device(args.device)
    precision = choose_precision("auto", device)
    worker_counts = [int(w) for w in args.workers.split(",")]
    auto_workers = choose_tile_workers("auto", device)
    module, _ = load_backbone(args.backbone)
    module = module.to(device)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        slides = make_slides(tmp, args.tiles, args.slides, args)
        n_tiles = sum(len(tiles) for _, _, tiles in slides)
        ready = torch.cat([prepare(batch, args.res, device)
                           for batch in tile_loader(TileBatches(slides, args.batch_size), 0, device)])
        model_only(module, ready[: args.batch_size], args.batch_size, precision, device)  # warm-up

        def end_to_end(workers: int) -> float:
            start = time.perf_counter()
            extract_tiles(slides, tmp / "features.npy", module, args.res, args.batch_size, workers, device,
                          precision, desc=f"end-to-end, {workers} workers")
            return n_tiles / (time.perf_counter() - start)

        runs = {"model-only": lambda: model_only(module, ready, args.batch_size, precision, device)}
        runs.update({f"reading, {w} workers": partial(reading_rate, slides, args.batch_size, w, device)
                     for w in worker_counts})
        runs.update({f"end-to-end, {w} workers": partial(end_to_end, w) for w in worker_counts})
        rates = {name: [] for name in runs}
        for round_ in range(args.rounds):  # rotated order: no measurement always runs first or last
            names = list(runs)[round_ % len(runs):] + list(runs)[:round_ % len(runs)]
            for name in names:
                rates[name].append(runs[name]())

    print(f"backbone={args.backbone} res={args.res} device={device} precision={precision} batch={args.batch_size} "
          f"threads={args.threads} slides={args.slides} tiles={n_tiles} tile_size={args.tile_size} "
          f"base_mpp={args.base_mpp} target_mpp={args.target_mpp} read level={slides[0][1].level} "
          f"read_size={slides[0][1].read_size}")

    def ratio(name: str) -> float:  # per-round ratios: load from other processes hits both sides alike
        return statistics.median(e / m for e, m in zip(rates[name], rates["model-only"]))

    for name, values in rates.items():
        line = f"{name}: {statistics.median(values):.1f} tiles/s"
        if name.startswith("end-to-end"):
            line += f", ratio to model-only {ratio(name):.3f}"
        print(f"{line} (rounds: {', '.join(f'{r:.1f}' for r in values)})")
    if f"end-to-end, {auto_workers} workers" in rates:
        print(f"ratio end-to-end / model-only (auto = {auto_workers} workers): "
              f"{ratio(f'end-to-end, {auto_workers} workers'):.3f}")


if __name__ == "__main__":
    main()
