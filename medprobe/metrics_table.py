"""The long metrics table's columns and number format, shared by evaluate and aggregate."""

FLOAT_FORMAT = "%.6f"
METRIC_COLUMNS = [
    "dataset", "task", "control", "backbone", "resolution", "probe", "seed", "metric", "value",
    "ci_low", "ci_high", "n_boot", "n_evaluated", "n_total", "provenance_id",
]
SORT_COLUMNS = ["dataset", "task", "backbone", "resolution", "probe", "seed", "metric"]
