"""End-to-end extraction throughput vs model-only throughput, measured side by side.

End to end = memory-mapped uint8 split array -> DataLoader batches -> resize/normalise ->
model -> float16 features written to a memory-mapped .npy (medprobe.features.extract.extract_array,
the code the pipeline runs). Model only = the same backbone on ready float tensors of the final
size. Rounds alternate between the two so drift affects both; the median of each is reported.
The last line printed is the ratio end-to-end / model-only (target >= 0.9 on CPU).

    python benchmarks/extract_throughput.py [--backbone vit_tiny_random] [--res 224] ...
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medprobe.backbones.load import load_backbone
from medprobe.features.extract import choose_device, choose_num_workers, choose_precision, extract_array


def model_only(module, images: torch.Tensor, batch_size: int, precision: str, device) -> float:
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    start = time.perf_counter()
    with torch.inference_mode(), autocast:
        for i in range(0, len(images), batch_size):
            tokens = module(images[i:i + batch_size])
            torch.stack([t.float() for t in tokens.values()], 1).to(torch.float16).cpu()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="vit_tiny_random")
    parser.add_argument("--res", type=int, default=224)
    parser.add_argument("--stored-size", type=int, default=256, help="side of the preprocessed uint8 images")
    parser.add_argument("--n-images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", default="auto", help="int or auto (0 on CPU, 4 on CUDA)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = choose_device(args.device)
    precision = choose_precision("auto", device)
    workers = choose_num_workers(args.num_workers, device)
    module, _ = load_backbone(args.backbone)
    module = module.to(device)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        array_path = Path(tmp) / "split.npy"
        array = np.lib.format.open_memmap(array_path, mode="w+", dtype=np.uint8,
                                          shape=(args.n_images, 1, args.stored_size, args.stored_size))
        array[:] = rng.integers(0, 256, size=array.shape, dtype=np.uint8)
        array.flush()
        del array
        ready = torch.rand(args.n_images, 1, args.res, args.res, device=device)
        model_only(module, ready[: args.batch_size], args.batch_size, precision, device)  # warm-up

        model_rates, pipeline_rates = [], []
        for _ in range(args.rounds):
            model_rates.append(model_only(module, ready, args.batch_size, precision, device))
            start = time.perf_counter()
            extract_array(array_path, Path(tmp) / "features.npy", module, args.res,
                          batch_size=args.batch_size, num_workers=workers,
                          device=device, precision=precision, desc="end-to-end")
            pipeline_rates.append(args.n_images / (time.perf_counter() - start))

    model_rate, pipeline_rate = statistics.median(model_rates), statistics.median(pipeline_rates)
    print(f"backbone={args.backbone} res={args.res} device={device} precision={precision} "
          f"batch={args.batch_size} workers={workers} threads={args.threads} n={args.n_images}")
    print(f"model-only throughput: {model_rate:.1f} img/s (rounds: {', '.join(f'{r:.1f}' for r in model_rates)})")
    print(f"end-to-end throughput: {pipeline_rate:.1f} img/s (rounds: {', '.join(f'{r:.1f}' for r in pipeline_rates)})")
    print(f"ratio end-to-end / model-only: {pipeline_rate / model_rate:.3f}")


if __name__ == "__main__":
    main()
