"""Aggregate stage: every job's metric rows -> results/metrics.csv and lineage records."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medprobe.atomic import atomic_path, write_json
from medprobe.metrics_table import SORT_COLUMNS, read_metrics, write_metrics
from medprobe.provenance import chain, load_record


def aggregate_stage(metric_files: list[str], metrics_out: str, provenance_dir: str) -> None:
    """One long table, sorted, fixed float format: same inputs give byte-identical bytes."""
    tables, records = [], {}
    for path in metric_files:
        table = read_metrics(path)
        tables.append(table)
        record = load_record(Path(path).with_name("provenance.json"))
        records[record["id"]] = {"id": record["id"], "metrics_file": path,
                                 "chain": chain(record)}
    table = pd.concat(tables, ignore_index=True)
    table = table.sort_values(SORT_COLUMNS, kind="stable")
    with atomic_path(metrics_out) as tmp:
        write_metrics(table, tmp)
    out = Path(provenance_dir)
    out.mkdir(parents=True, exist_ok=True)
    for prov_id, record in records.items():
        write_json(out / f"{prov_id}.json", record)
