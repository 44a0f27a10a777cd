"""Masks stage: a segmentation dataset's label maps, aligned with its preprocessed images, with provenance."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from medprobe.datasets.registry import dataset_entry
from medprobe.provenance import StageRecord
from medprobe.splits import SPLITS

log = logging.getLogger("medprobe")


def preprocess_masks_stage(dataset: str, registry_name: str, options: dict, manifest: str, processed_dir: str,
                           upstream: str, provenance: str, rule: str | None = None,
                           log_path: str | None = None) -> None:
    from medprobe.download import dataset_root
    from medprobe.masks import write_masks

    entry = dataset_entry(registry_name, {k: v for k, v in options.items() if k != "base"})
    processed_dir = Path(processed_dir)
    record = StageRecord("preprocess_masks", __name__, {"dataset": dataset, "registry_name": registry_name},
                         inputs={"items": processed_dir / "items.parquet", "spec": processed_dir / "spec.json"},
                         upstream={"preprocess": upstream}, rule=rule, log=log_path,
                         runtime_modules=(entry["adapter"],))
    spec = json.loads((processed_dir / "spec.json").read_text())
    summary = write_masks(dataset, entry, dataset_root(Path(manifest).parent), processed_dir / "items.parquet",
                          spec, processed_dir)
    log.info("masks %s: %s", dataset, summary)
    record.write(provenance, outputs={f"masks_{s}": processed_dir / f"masks_{s}.npy" for s in SPLITS},
                 extra=summary)
