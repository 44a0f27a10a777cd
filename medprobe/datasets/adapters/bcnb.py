"""BCNB (Early Breast Cancer Core-Needle Biopsy WSI) as the publisher releases it: patient-clinical-data.xlsx with one
row per patient and WSIs/<Patient ID>.jpg, one plain-JPEG slide per patient (so the patient is the slide).

Binary labels come from the clinical table through the entry's value lists (a blank cell is a missing label, -1; any
other unlisted value is an error naming it). Splits: protocol cv deals patients into seeded folds
(medprobe.splits.kfold_patient_folds); the chosen fold is test and the rest 'trainval', from which the split policy
carves val. protocol official reads the publisher's train/val/test id lists.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medprobe.datasets.adapters import LayoutError, label_column, require_files
from medprobe.splits import kfold_patient_folds


def _protocol(entry: dict, options: dict) -> str:
    return options.get("protocol", entry["options"]["protocol"]["default"])


def _slide(spec: dict, patient: str) -> str:
    return f"{spec['slide_dir']}/{patient}{spec['slide_suffix']}"


def check_layout(root: Path, entry: dict, options: dict) -> None:
    """The table and slide folder (and the id lists for protocol official) first, then every patient's slide."""
    spec, layout = entry["labels"], entry["source"]["layout"]
    required = [spec["table"], spec["slide_dir"]]
    if _protocol(entry, options) == "official":
        required += list(spec["lists"].values())
    try:
        require_files(root, required, layout)
    except LayoutError as err:
        found = sorted(p.parent for p in root.rglob(spec["table"]) if p.parent != root) if root.is_dir() else []
        if found:
            raise LayoutError(f"{err}\n{spec['table']} is in {found[0]}: set `path` to that folder") from None
        raise
    require_files(root, [_slide(spec, patient) for patient in _table(root, spec).index], layout)


def _table(root: Path, spec: dict) -> pd.DataFrame:
    """The clinical table as text, indexed by patient id; ids must be unique whole numbers."""
    path = root / spec["table"]
    table = pd.read_excel(path, dtype=str, keep_default_na=False)
    columns = [spec["id_column"], *(label["column"] for label in spec["binary"].values())]
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")
    ids = table[spec["id_column"]].str.strip()
    bad = table.index[~ids.str.fullmatch(r"\d+")]
    if len(bad):
        raise ValueError(f"{path}: {spec['id_column']} must be a whole number; rows {(bad + 2).tolist()[:5]} are not")
    duplicated = sorted(set(ids[ids.duplicated()]))
    if duplicated:
        raise ValueError(f"{path}: {spec['id_column']} listed twice: {duplicated[:5]}")
    return table.set_index(ids)


def _binary(path: Path, table: pd.DataFrame, column: str, positive: list[str], negative: list[str]) -> pd.Series:
    values = table[column].str.strip().str.casefold()
    mapping = {**{v.casefold(): 1 for v in positive}, **{v.casefold(): 0 for v in negative}, "": -1}
    unknown = sorted(set(table[column][~values.isin(list(mapping))].str.strip()))
    if unknown:
        raise ValueError(f"{path}: column '{column}' holds {unknown[:5]}; expected {positive} (1), {negative} (0) or "
                         "a blank cell (missing)")
    return values.map(mapping).astype("int8")


def read_items(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    root, spec = Path(root), entry["labels"]
    table = _table(root, spec)
    patients = pd.Series(table.index, index=table.index)
    items = pd.DataFrame({"item_id": patients, "patient_id": patients,
                          "source_file": [_slide(spec, patient) for patient in patients]})
    for label, rule in spec["binary"].items():
        items[label_column(label)] = _binary(root / spec["table"], table, rule["column"], rule["positive"],
                                             rule["negative"])
    if _protocol(entry, options) == "official":
        items["split"] = _official_splits(root, spec, patients)
    else:
        folds = kfold_patient_folds(patients, entry["split"]["n_folds"], options.get("split_seed", 0))
        items["cv_fold"] = folds.astype("int64")
        items["split"] = ["test" if fold == options.get("fold", 0) else "trainval" for fold in folds]
    return items.reset_index(drop=True)


def _official_splits(root: Path, spec: dict, patients: pd.Series) -> pd.Series:
    """Each patient's split from the publisher's id lists; a patient in no list or in two is an error."""
    listed = {}
    for split, name in spec["lists"].items():
        for patient in (root / name).read_text().split():
            if patient in listed:
                raise ValueError(f"{root / name}: patient {patient} is also in the {listed[patient]} list")
            listed[patient] = split
    unlisted = [patient for patient in patients if patient not in listed]
    if unlisted:
        raise ValueError(f"{root}: {len(unlisted)} patient(s) of {spec['table']} are in no list of "
                         f"{sorted(spec['lists'].values())}, e.g. {unlisted[:5]}")
    return patients.map(listed)
