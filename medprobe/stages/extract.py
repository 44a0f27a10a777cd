"""Extraction stage: one (dataset, backbone, resolution) -> float16 features, index, spec."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from medprobe.atomic import atomic_path, write_json
from medprobe.provenance import StageRecord
from medprobe.splits import SPLITS

log = logging.getLogger("medprobe")


def ready_backbone(backbone: str, settings: dict, weights: dict, last_n: int = 1):
    """(module on its device, identity, device, precision) from the extract settings and weights config."""
    from medprobe.backbones.load import load_backbone
    from medprobe.backbones.registry import get_backbone
    from medprobe.features.extract import choose_device, choose_precision

    device = choose_device(settings["device"])
    precision = choose_precision(settings["precision"], device)
    # Pretrained models are built on the meta device and filled from the weights: no throw-away random init.
    module, identity = load_backbone(backbone, weights_file=weights.get("file"), cache_dir=weights["cache_dir"],
                                     last_n=last_n, device_meta=bool(get_backbone(backbone).get("pretrained")))
    return module.to(device), identity, device, precision


def _extract_slide_tiles(items: pd.DataFrame, split: str, tile_table: Path, raw_manifest: str | None,
                         out_path: Path, module, res: int, settings: dict, device, precision: str, desc: str):
    """One split of a slide dataset: every ok slide's tiles, read from the slide, in the tile table's order."""
    import numpy as np

    from medprobe.download import dataset_root
    from medprobe.features.tiles import choose_tile_workers, extract_tiles
    from medprobe.wsi.preprocess import slide_reads

    if raw_manifest is None:
        raise ValueError("a slide dataset's extraction needs its download manifest (the slides' folder)")
    members = items[(items["split"] == split) & (items["status"] == "ok")]
    reads = slide_reads(dataset_root(Path(raw_manifest).parent), Path(tile_table).parent, members,
                        np.load(tile_table, mmap_mode="r"))
    return extract_tiles(reads, out_path, module, res, batch_size=settings["batch_size"],
                         num_workers=choose_tile_workers(settings["num_workers"], device), device=device,
                         precision=precision, desc=desc)


def extract_stage(dataset: str, backbone: str, res: int, settings: dict, weights: dict, processed_dir: str,
                  upstream: str, out_dir: str, threads: int = 1, rule: str | None = None,
                  log_path: str | None = None, raw_manifest: str | None = None) -> None:
    """weights: {"cache_dir": hub cache, "file": a local weights file for this backbone or None}.
    raw_manifest: the download manifest of a slide dataset, whose tiles are read from the slides themselves."""
    import torch

    from medprobe.backbones.load import token_names
    from medprobe.backbones.registry import get_backbone
    from medprobe.features.extract import choose_num_workers, extract_array

    torch.set_num_threads(max(1, threads))
    processed_dir, out_dir = Path(processed_dir), Path(out_dir)
    arrays = {s: processed_dir / f"{s}.npy" for s in SPLITS}
    record = StageRecord(
        "extract_features", __name__,
        {"dataset": dataset, "backbone": backbone, "resolution": res, "last_n": settings["last_n"],
         "batch_size": settings["batch_size"], "precision": settings["precision"]},
        inputs={f"array_{s}": p for s, p in arrays.items()} | {"items": processed_dir / "items.parquet"}
        | ({"weights_file": weights["file"]} if weights.get("file") else {})
        | ({"raw_manifest": raw_manifest} if raw_manifest else {}),
        upstream={"preprocess": upstream}, rule=rule, log=log_path,
    )
    entry = get_backbone(backbone)
    module, identity, device, precision = ready_backbone(backbone, settings, weights, settings["last_n"])
    log.info("extracting %s / %s at %d px on %s (%s)", dataset, backbone, res, device, precision)
    preprocess_spec = json.loads((processed_dir / "spec.json").read_text())
    items = pd.read_parquet(processed_dir / "items.parquet")
    shapes = {}
    for split, array in arrays.items():
        desc = f"{backbone} {res}px {split}"
        if preprocess_spec["dimensionality"] == "wsi":
            shapes[split] = _extract_slide_tiles(items, split, array, raw_manifest, out_dir / f"{split}.npy",
                                                 module, res, settings, device, precision, desc)
        else:
            shapes[split] = extract_array(array, out_dir / f"{split}.npy", module, res,
                                          batch_size=settings["batch_size"],
                                          num_workers=choose_num_workers(settings["num_workers"], device),
                                          device=device, precision=precision, desc=desc)
    channels = preprocess_spec["channels"]
    tokens = token_names(entry, settings["last_n"])
    index = items[items["status"] == "ok"].drop(columns=["status"]).reset_index(drop=True)
    with atomic_path(out_dir / "index.parquet") as tmp:
        index.to_parquet(tmp, index=False)
    stored = preprocess_spec["size"]
    spec = {
        "dataset": dataset,
        "backbone": identity,
        "resolution": res,
        "input": {"channels": ("RGB, used as is" if channels == 3 else
                               "grayscale replicated to 3" if identity["source"] != "pixels" else "grayscale"),
                  "resize": ("none" if res == stored else
                             f"{'upsampled' if res > stored else 'downsampled'} from {stored} to {res} px, "
                             "bilinear, antialiased"),
                  "upsampling_factor": res / stored,
                  "preprocess": preprocess_spec},
        "tokens": tokens,
        "layout": "(items, tokens, dim) float16, rows aligned to index.parquet 'row' within each split",
        "shapes": {s: list(v) for s, v in shapes.items()},
        "device": str(device),
        "device_type": device.type,
        "precision": precision,
        "tasks": preprocess_spec["tasks"],
    }
    write_json(out_dir / "spec.json", spec)
    record.write(out_dir / "provenance.json",
                 outputs={**{s: out_dir / f"{s}.npy" for s in SPLITS},
                          "index": out_dir / "index.parquet", "spec": out_dir / "spec.json"},
                 extra={"backbone": identity, "device": str(device), "precision": precision})
