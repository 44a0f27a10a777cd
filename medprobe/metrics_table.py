"""The long metrics table's columns and number format, shared by evaluate and aggregate."""

from __future__ import annotations

import pandas as pd

FLOAT_FORMAT = "%.6f"
# shots: a few-shot row's training examples per class; empty for probes trained on the whole train split.
METRIC_COLUMNS = [
    "dataset", "task", "control", "backbone", "resolution", "probe", "shots", "seed", "metric", "value",
    "ci_low", "ci_high", "n_boot", "n_evaluated", "n_total", "provenance_id",
]
SORT_COLUMNS = ["dataset", "task", "backbone", "resolution", "probe", "shots", "seed", "metric"]


def metrics_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows in the table's column order; shots stays an integer column with empty cells, not 4.0 and NaN."""
    table = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    return table.astype({"shots": "Int64"})


def read_metrics(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"shots": "Int64"})


def write_metrics(table: pd.DataFrame, path) -> None:
    table.to_csv(path, index=False, float_format=FLOAT_FORMAT)
