"""Patch-grid stage: one (dataset, backbone, resolution) -> float16 last-layer patch-token grids per split,
the features the segmentation heads read."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from medprobe.atomic import write_json
from medprobe.provenance import StageRecord
from medprobe.splits import SPLITS

log = logging.getLogger("medprobe")


def patch_grids_stage(dataset: str, backbone: str, res: int, settings: dict, weights: dict, processed_dir: str,
                      upstream: str, out_dir: str, threads: int = 1, rule: str | None = None,
                      log_path: str | None = None) -> None:
    import torch

    from medprobe.features.extract import choose_num_workers
    from medprobe.features.patch_grid import extract_patch_grids
    from medprobe.stages.extract import ready_backbone

    torch.set_num_threads(max(1, threads))
    processed_dir, out_dir = Path(processed_dir), Path(out_dir)
    arrays = {s: processed_dir / f"{s}.npy" for s in SPLITS}
    record = StageRecord(
        "patch_grids", __name__,
        {"dataset": dataset, "backbone": backbone, "resolution": res, "batch_size": settings["batch_size"],
         "precision": settings["precision"]},
        inputs={f"array_{s}": p for s, p in arrays.items()} | {"items": processed_dir / "items.parquet"}
        | ({"weights_file": weights["file"]} if weights.get("file") else {}),
        upstream={"preprocess": upstream}, rule=rule, log=log_path,
    )
    module, identity, device, precision = ready_backbone(backbone, settings, weights)
    log.info("patch grids %s / %s at %d px on %s (%s)", dataset, backbone, res, device, precision)
    shapes = {split: list(extract_patch_grids(array, out_dir / f"{split}.npy", module, res,
                                              batch_size=settings["batch_size"], device=device, precision=precision,
                                              num_workers=choose_num_workers(settings["num_workers"], device),
                                              desc=f"{backbone} {res}px {split} grids"))
              for split, array in arrays.items()}
    write_json(out_dir / "spec.json", {
        "dataset": dataset, "backbone": identity, "resolution": res, "shapes": shapes,
        "layout": "(rows, dim, h, w) float16 last-layer patch tokens (final norm; CLS and registers dropped), "
                  "rows aligned with the preprocessed arrays",
        "device": str(device), "precision": precision,
        "preprocess": json.loads((processed_dir / "spec.json").read_text()),
    })
    record.write(out_dir / "provenance.json",
                 outputs={**{s: out_dir / f"{s}.npy" for s in SPLITS}, "spec": out_dir / "spec.json"},
                 extra={"backbone": identity, "device": str(device), "precision": precision})
