"""Preprocess stage: raw files -> item table and memory-mappable arrays, with provenance."""

from __future__ import annotations

import logging
from pathlib import Path

from medprobe.datasets.registry import get_dataset
from medprobe.provenance import StageRecord
from medprobe.splits import SPLITS

log = logging.getLogger("medprobe")


def preprocess_stage(dataset: str, registry_name: str, settings: dict, manifest: str, upstream: str,
                     outputs: dict, rule: str | None = None, log_path: str | None = None) -> None:
    from medprobe.preprocess import preprocess_2d

    entry = get_dataset(registry_name)
    record = StageRecord("preprocess", __name__, {"dataset": dataset, "registry_name": registry_name,
                                                    "settings": settings},
                         inputs={"manifest": manifest}, upstream={"download": upstream},
                         rule=rule, log=log_path)
    out_dir = Path(outputs["table"]).parent
    spec = preprocess_2d(dataset, entry, Path(manifest).parent, out_dir, size=settings["size"],
                         resize_policy=settings["resize_policy"],
                         voi_fallback=settings["voi_fallback"],
                         percentiles=tuple(settings["percentiles"]), on_error=settings["on_error"])
    counts = spec["counts"]
    skipped = sum(c["total"] - c["ok"] for c in counts.values())
    log.info("preprocessed %s: %s (%d skipped)", dataset, counts, skipped)
    record.write(outputs["provenance"],
                 outputs={"items": outputs["table"], "split": outputs["split"], "spec": outputs["spec"],
                          **{f"array_{s}": str(out_dir / f"{s}.npy") for s in SPLITS}},
                 extra={"counts": counts})
