"""Patient-level splits and the leakage check every dataset goes through."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
    if empty and empty != ["train", "val"]:  # all test: a transfer test set, probed with another set's training
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


def random_patient_split(patients: pd.Series, fractions: dict[str, float], seed: int,
                         strata: pd.Series | None = None) -> pd.Series:
    """Seeded patient -> split, stratified by `strata` (one value per patient) when given.

    Patients are sorted, shuffled within their stratum, lined up stratum after stratum, and dealt
    one by one to the split furthest below its share so far. Every split then holds its share of
    the whole to within one patient, and of every stratum to within about two, however small the
    strata (rounding per stratum would leave a small split empty when strata are many and small).
    Sorting first means the result never depends on file-listing order.
    """
    names = [s for s in fractions if fractions[s] > 0]
    weights = np.array([fractions[s] for s in names], dtype=float)
    if abs(weights.sum() - 1.0) > 1e-6:
        raise SplitError(f"split fractions must sum to 1, got {fractions}")
    unique = sorted(set(patients))
    groups = strata.reindex(unique).fillna("").astype(str) if strata is not None else pd.Series("", index=unique)
    rng = np.random.default_rng(seed)
    order: list = []
    for stratum in sorted(set(groups)):
        members = np.array(sorted(groups.index[groups == stratum]), dtype=object)
        order.extend(members[rng.permutation(len(members))])
    counts = np.zeros(len(names))
    assigned = {}
    for dealt, patient in enumerate(order, start=1):
        choice = int(np.argmax(weights * dealt - counts))
        counts[choice] += 1
        assigned[patient] = names[choice]
    return patients.map(assigned)


def kfold_patient_folds(patients: pd.Series, n_folds: int, seed: int) -> pd.Series:
    """Seeded patient -> fold 0..n_folds-1: sorted patient ids, one seeded permutation, dealt round-robin.

    Every fold then holds n_patients / n_folds patients to within one, and sorting first means the folds never
    depend on file-listing order.
    """
    unique = np.array(sorted(set(patients)), dtype=object)
    order = unique[np.random.default_rng(seed).permutation(len(unique))]
    return patients.map({patient: index % n_folds for index, patient in enumerate(order)})


def _kfold_splits(items: pd.DataFrame, policy: dict, seed: int, source: str) -> pd.DataFrame:
    """Fold k (the items' `test_fold`, from the dataset option the adapter recorded) is test, fold k+1 val."""
    n_folds = policy["n_folds"]
    chosen = sorted(set(items["test_fold"])) if "test_fold" in items.columns else []
    if len(chosen) != 1 or chosen[0] not in range(n_folds):
        raise SplitError(f"{source}: the kfold split policy needs one test fold in 0..{n_folds - 1} in the "
                         f"item table's test_fold column, found {chosen}")
    n_patients = items["patient_id"].nunique()
    if n_patients < n_folds:
        raise SplitError(f"{source}: {n_folds}-fold cross-validation needs at least {n_folds} patients, "
                         f"found {n_patients}")
    test_fold = int(chosen[0])
    folds = kfold_patient_folds(items["patient_id"], n_folds, seed)
    items["cv_fold"] = folds.astype("int64")
    items["split"] = np.where(folds == test_fold, "test",
                              np.where(folds == (test_fold + 1) % n_folds, "val", "train"))
    return items


def _patient_strata(items: pd.DataFrame, task_labels: list[str] | None) -> pd.Series | None:
    """A patient's stratum: its label vector for the stratifying task (max over its images)."""
    if not task_labels:
        return None
    columns = [f"label_{label}" for label in task_labels]
    per_patient = items.groupby("patient_id")[columns].max()
    return per_patient.astype(str).agg("".join, axis=1)


def apply_split_policy(items: pd.DataFrame, policy: dict, root: Path, seed: int, source: str,
                       stratify_labels: list[str] | None = None) -> pd.DataFrame:
    """Give every item a split by the registry entry's policy, then check it is patient-level.

    Policies: "adapter" (the adapter filled `split`), "table" (a per-patient split file),
    "lists" (image-name lists per split; a "trainval" list has val carved out by patient),
    "random" (seeded, patient-level, stratified by the first task's labels), "kfold" (seeded patient-level
    folds, see kfold_patient_folds: the fold in the items' `test_fold` column is test, the next fold val, the
    rest train; each item's fold is kept as `cv_fold`).
    """
    kind = policy["policy"]
    items = items.copy()
    if kind == "table":
        table = pd.read_csv(root / policy["file"], dtype=str, keep_default_na=False)
        table = table.rename(columns={policy["patient_column"]: "patient_id", policy["split_column"]: "split"})
        return assign_patient_splits(items.drop(columns=["split"], errors="ignore"), table, source)
    if kind == "lists":
        names = items["source_file"].map(lambda p: Path(p).name)
        items["split"] = ""
        for split, file in policy["files"].items():
            listed = set((root / file).read_text().split())
            items.loc[names.isin(listed), "split"] = split
        unlisted = items.loc[items["split"] == "", "source_file"].tolist()
        if unlisted:
            raise SplitError(f"{source}: {len(unlisted)} item(s) are in no split list "
                             f"{sorted(policy['files'].values())}, e.g. {unlisted[:5]}")
    elif kind == "random":
        items["split"] = random_patient_split(items["patient_id"], policy["fractions"], seed,
                                              _patient_strata(items, stratify_labels)).to_numpy()
    elif kind == "kfold":
        items = _kfold_splits(items, policy, seed, source)
    elif kind != "adapter":
        raise ValueError(f"{source}: unknown split policy {kind!r}")
    trainval = items["split"] == "trainval"
    if trainval.any():
        val_fraction = policy["val_fraction"]
        sub = items[trainval]
        carved = random_patient_split(sub["patient_id"], {"train": 1 - val_fraction, "val": val_fraction},
                                      seed, _patient_strata(sub, stratify_labels))
        items.loc[trainval, "split"] = carved.to_numpy()
    check_patient_level(items, source)
    return items
