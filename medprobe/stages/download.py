"""Download stage: raw files plus a manifest, then the stage's provenance record."""

from __future__ import annotations

from pathlib import Path

from medprobe.datasets.registry import dataset_entry
from medprobe.provenance import StageRecord


def download_stage(dataset: str, options: dict, downloads_dir: str, manifest: str, provenance: str,
                   rule: str | None = None, log_path: str | None = None) -> None:
    from medprobe.download import fetch_dataset

    base = options.get("base", dataset)  # a config name may be an instance of a registry entry
    source_options = {k: v for k, v in options.items() if k != "base"}
    record = StageRecord("download", __name__, {"dataset": dataset, "options": options,
                                                "registry_entry": dataset_entry(base, source_options)},
                         rule=rule, log=log_path)
    fetched = fetch_dataset(base, Path(manifest).parent, source_options, downloads_dir)
    record.write(provenance, outputs={"manifest": manifest}, extra={"fetched": fetched})
