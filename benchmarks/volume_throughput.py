"""3-D feature extraction throughput in slices/s, next to the model-only rate, measured in one run.

Volumes are generated demo_ct scans (NIfTI and DICOM series). Three rates, in slices per second:
  ingestion   = volume files -> canonical RAS -> CT window -> axial slices -> uint8 slice stack
                (medprobe.preprocess.preprocess_dataset, what the preprocess stage runs once per dataset)
  end-to-end  = slice stack (memory-mapped) -> resize/normalise -> model -> float16 features written
                (medprobe.features.extract.extract_array, what each extraction job runs)
  model-only  = the same backbone on ready float tensors of the final size
Rounds alternate end-to-end and model-only so drift affects both; medians are reported. The last line
printed is the ratio end-to-end / model-only.

    python benchmarks/volume_throughput.py [--backbone vit_tiny_random] [--res 112] [--patients 16]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from extract_throughput import model_only

from medprobe.backbones.load import load_backbone
from medprobe.datasets.registry import get_dataset, preprocess_settings, resolve_options
from medprobe.download import fetch_dataset
from medprobe.features.extract import choose_device, choose_num_workers, choose_precision, extract_array
from medprobe.preprocess import preprocess_dataset

GLOBAL_SETTINGS = {"size": 256, "resize_policy": "pad", "voi_fallback": "percentile", "percentiles": [0.5, 99.5],
                   "on_error": "fail", "slice_axis": "axial", "ct_window": "wide"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="vit_tiny_random")
    parser.add_argument("--res", type=int, default=112)
    parser.add_argument("--patients", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", default="auto", help="int or auto (0 on CPU, 4 on CUDA)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = choose_device(args.device)
    precision = choose_precision("auto", device)
    workers = choose_num_workers(args.num_workers, device)
    module, _ = load_backbone(args.backbone)
    module = module.to(device)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        options = resolve_options("demo_ct", {"n_patients": max(30, args.patients), "seed": 0})
        fetch_dataset("demo_ct", tmp / "raw", options, tmp / "downloads")
        settings = preprocess_settings("demo_ct", GLOBAL_SETTINGS, options)
        start = time.perf_counter()
        preprocess_dataset("demo_ct", get_dataset("demo_ct"), tmp / "raw", tmp / "raw" / "manifest.tsv",
                           tmp / "out", settings, options)
        arrays = [tmp / "out" / f"{split}.npy" for split in ("train", "val", "test")]
        n_slices = sum(np.load(path, mmap_mode="r").shape[0] for path in arrays)
        ingestion_rate = n_slices / (time.perf_counter() - start)
        stack = arrays[0]
        n_stack = np.load(stack, mmap_mode="r").shape[0]
        ready = torch.rand(n_stack, 1, args.res, args.res, device=device)
        model_only(module, ready[: args.batch_size], args.batch_size, precision, device)  # warm-up
        model_rates, pipeline_rates = [], []
        for _ in range(args.rounds):
            model_rates.append(model_only(module, ready, args.batch_size, precision, device))
            start = time.perf_counter()
            extract_array(stack, tmp / "features.npy", module, args.res, batch_size=args.batch_size,
                          num_workers=workers, device=device, precision=precision, desc="end-to-end")
            pipeline_rates.append(n_stack / (time.perf_counter() - start))
    model_rate, pipeline_rate = statistics.median(model_rates), statistics.median(pipeline_rates)
    print(f"backbone={args.backbone} res={args.res} device={device} precision={precision} batch={args.batch_size} "
          f"workers={workers} threads={args.threads} volumes={options['n_patients']} slices={n_slices}")
    print(f"ingestion (volumes -> slice stacks): {ingestion_rate:.1f} slices/s")
    print(f"model-only throughput: {model_rate:.1f} slices/s (rounds: {', '.join(f'{r:.1f}' for r in model_rates)})")
    print(f"end-to-end throughput: {pipeline_rate:.1f} slices/s "
          f"(rounds: {', '.join(f'{r:.1f}' for r in pipeline_rates)})")
    print(f"ratio end-to-end / model-only: {pipeline_rate / model_rate:.3f}")


if __name__ == "__main__":
    main()
