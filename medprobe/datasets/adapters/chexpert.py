"""CheXpert layout (Stanford; CheXpert-v1.0-small and the full CheXpert-v1.0): train.csv and valid.csv beside
train/ and valid/ folders of patientNNNNN/studyN/viewN_<frontal|lateral>.jpg.

The CSV `Path` column starts with the archive's folder name ("CheXpert-v1.0-small/train/..."); everything before
the train/ or valid/ component is dropped, so `path` points at the folder that holds train.csv whatever it is
called. Observation values are 1.0 (positive), 0.0 (negative), -1.0 (uncertain) or blank (not mentioned in the
report); blank is read as 0 (negative), the usual convention. The dataset option `uncertain` maps -1:
  zeros  -> 0 (U-Zeros)                 ones -> 1 (U-Ones)
  ignore -> -1, a missing label that probes and metrics skip for that image only
  extra  -> 0, and the uncertainty itself becomes a second task: "<observation> uncertain" is 1 where the
            observation was -1 (study B's extra output)
The "<observation> uncertain" columns are written under every policy (they are facts of the table); the entry
enables their task only for `extra`.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from medprobe.datasets.adapters import LayoutError, label_column, per_file_images, require_files
from medprobe.io.images import read_raster_image

VALUES = {"": 0, "1.0": 1, "0.0": 0, "-1.0": -1, "1": 1, "0": 0, "-1": -1}
UNCERTAIN_TO = {"zeros": 0, "ones": 1, "ignore": -1, "extra": 0}
PATIENT = re.compile(r"patient\d+")


def read_items(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    spec = entry["labels"]
    policy = options.get("uncertain", entry["options"]["uncertain"]["default"])
    views = options.get("views", entry["options"]["views"]["default"])
    if policy not in UNCERTAIN_TO:
        raise ValueError(f"CheXpert option uncertain={policy!r} is not one of {sorted(UNCERTAIN_TO)}")
    suffix = spec["uncertain_suffix"]
    labels = [lab for task in entry["tasks"].values() for lab in task["labels"]]
    observations = list(dict.fromkeys(lab for lab in labels if not lab.endswith(suffix)))
    parts = [_read_table(root / name, split, observations, policy, views, suffix)
             for name, split in spec["tables"].items()]
    items = pd.concat(parts, ignore_index=True)
    dupes = items["item_id"][items["item_id"].duplicated()].tolist()
    if dupes:
        raise ValueError(f"{root}: image(s) listed twice in {sorted(spec['tables'])}, e.g. {dupes[:5]}")
    return items


def _read_table(path: Path, split: str, observations: list[str], policy: str, views: str,
                suffix: str) -> pd.DataFrame:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("Path", "Frontal/Lateral", *observations) if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")
    if views == "frontal":
        table = table[table["Frontal/Lateral"] == "Frontal"]
    elif views != "all":
        raise ValueError(f"CheXpert option views={views!r} is not one of ['frontal', 'all']")
    folder = path.stem  # train.csv lists train/..., valid.csv lists valid/...
    parsed = [_image_path(value, folder) for value in table["Path"]]
    bad_paths = [(index + 2, value) for (index, value), ok in zip(table["Path"].items(), parsed) if ok is None]
    if bad_paths:
        raise ValueError(f"{path}: Path on line(s) {[line for line, _ in bad_paths[:5]]} is not "
                         f"<prefix>/{folder}/patientNNNNN/studyN/<view>.jpg, e.g. {bad_paths[0][1]!r}")
    items = pd.DataFrame({
        "item_id": ["_".join(parts[1:]).removesuffix(Path(parts[-1]).suffix) for parts in parsed],
        "patient_id": [parts[1] for parts in parsed],
        "source_file": ["/".join(parts) for parts in parsed],
        "split": split,
    }, index=table.index)
    for observation in observations:
        column = table[observation].str.strip()
        bad = column[~column.isin(list(VALUES))]
        if len(bad):
            lines = [i + 2 for i in bad.index[:5]]
            raise ValueError(f"{path}: column '{observation}' holds {sorted(set(bad))[:5]} on line(s) {lines}; "
                             f"expected 1.0, 0.0, -1.0 or blank")
        raw = column.map(VALUES).to_numpy()
        items[label_column(observation)] = np.where(raw == -1, UNCERTAIN_TO[policy], raw).astype("int8")
        items[label_column(f"{observation}{suffix}")] = (raw == -1).astype("int8")
    return items.reset_index(drop=True)


def _image_path(value: str, folder: str) -> list[str] | None:
    """[folder, patient, study, file] from a CSV Path, whatever comes before the folder; None if malformed."""
    components = value.split("/")
    if folder not in components:
        return None
    parts = components[components.index(folder):]
    return parts if len(parts) == 4 and PATIENT.fullmatch(parts[1]) else None


def iter_images(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    return per_file_images(root, items, partial(read_raster_image, channels=entry.get("channels", 1)))


def check_layout(root: Path, entry: dict, options: dict) -> None:
    tables = list(entry["labels"]["tables"])
    try:
        require_files(root, [*tables, *(Path(t).stem for t in tables)], entry["source"]["layout"])
    except LayoutError as err:
        nested = sorted(p.parent.name for p in root.glob(f"*/{tables[0]}")) if root.is_dir() else []
        if nested:
            raise LayoutError(f"{err}\n{tables[0]} is in {root / nested[0]}: set `path` to that folder") from None
        raise
