"""Patient-level splits and the leakage check every dataset goes through."""

from __future__ import annotations

import pandas as pd

SPLITS = ("train", "val", "test")


class SplitError(ValueError):
    pass


def check_patient_level(items: pd.DataFrame, source: str) -> None:
    """A patient whose images sit in two splits leaks test information into training."""
    bad_split = sorted(set(items["split"]) - set(SPLITS))
    if bad_split:
        raise SplitError(f"{source}: unknown split name(s) {bad_split}; expected {list(SPLITS)}")
    per_patient = items.groupby("patient_id")["split"].nunique()
    leaking = per_patient[per_patient > 1].index.tolist()
    if leaking:
        detail = items[items["patient_id"].isin(leaking[:5])].groupby("patient_id")["split"].unique()
        examples = "; ".join(f"{pid}: {sorted(s)}" for pid, s in detail.items())
        raise SplitError(
            f"{source}: {len(leaking)} patient(s) appear in more than one split "
            f"(patient-level splits are required), e.g. {examples}"
        )
    empty = [s for s in SPLITS if not (items["split"] == s).any()]
    if empty:
        raise SplitError(f"{source}: split(s) {empty} contain no items")


def assign_patient_splits(items: pd.DataFrame, split_table: pd.DataFrame, source: str) -> pd.DataFrame:
    """Attach the split of each item's patient; an item whose patient has no split is an error."""
    duplicated = split_table["patient_id"][split_table["patient_id"].duplicated()]
    if len(duplicated):
        conflicting = split_table[split_table["patient_id"].isin(duplicated)]
        if conflicting.groupby("patient_id")["split"].nunique().max() > 1:
            names = sorted(conflicting["patient_id"].unique())[:5]
            raise SplitError(f"{source}: patient(s) listed in more than one split, e.g. {names}")
        split_table = split_table.drop_duplicates("patient_id")
    merged = items.merge(split_table[["patient_id", "split"]], on="patient_id", how="left")
    missing = merged[merged["split"].isna()]
    if len(missing):
        raise SplitError(
            f"{source}: {len(missing)} item(s) have a patient with no split, "
            f"e.g. patients {sorted(missing['patient_id'].unique())[:5]}"
        )
    check_patient_level(merged, source)
    return merged
