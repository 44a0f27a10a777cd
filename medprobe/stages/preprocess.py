"""Preprocess stage: raw files -> item table and memory-mappable arrays, with provenance."""

from __future__ import annotations

import logging
from pathlib import Path

from medprobe.datasets.registry import dataset_entry, preprocess_settings, resolve_options
from medprobe.provenance import StageRecord
from medprobe.splits import SPLITS

log = logging.getLogger("medprobe")


def preprocess_stage(dataset: str, registry_name: str, global_settings: dict, options: dict, manifest: str,
                     upstream: str, outputs: dict, rule: str | None = None, log_path: str | None = None) -> None:
    from medprobe.download import dataset_root
    from medprobe.preprocess import preprocess_dataset

    entry = dataset_entry(registry_name, {k: v for k, v in options.items() if k != "base"})
    source_options = resolve_options(registry_name, {k: v for k, v in options.items() if k != "base"})
    settings = preprocess_settings(registry_name, global_settings, source_options)
    record = StageRecord("preprocess", __name__, {"dataset": dataset, "registry_name": registry_name,
                                                    "settings": settings, "options": source_options},
                         inputs={"manifest": manifest}, upstream={"download": upstream},
                         rule=rule, log=log_path, runtime_modules=(entry["adapter"],))
    out_dir = Path(outputs["table"]).parent
    spec = preprocess_dataset(dataset, entry, dataset_root(Path(manifest).parent), manifest, out_dir,
                              settings, source_options)
    counts = spec["counts"]
    skipped = sum(c["total"] - c["ok"] for c in counts.values())
    log.info("preprocessed %s: %s (%d skipped)", dataset, counts, skipped)
    record.write(outputs["provenance"],
                 outputs={"items": outputs["table"], "split": outputs["split"], "spec": outputs["spec"],
                          **{f"array_{s}": str(out_dir / f"{s}.npy") for s in SPLITS},
                          **converted_slides(outputs["table"])},
                 extra={"counts": counts, **({"validation": spec["validation"]} if "validation" in spec else {})})


def converted_slides(items_path: str) -> dict[str, str]:
    """Slides converted from plain images (medprobe.wsi.preprocess): tiles are read from them, so they are hashed
    as this stage's outputs and an audit checks them like every other artifact."""
    import pandas as pd

    items = pd.read_parquet(items_path)
    if "slide_file" not in items.columns:
        return {}
    converted = items[(items["slide_file"] != items["source_file"]) & (items["status"] == "ok")]
    folder = Path(items_path).parent
    return {f"slide_{item}": str(folder / path) for item, path in zip(converted["item_id"], converted["slide_file"])}
