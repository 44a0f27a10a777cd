"""CAMELYON16 and CAMELYON17 as the AWS Open Data bucket lays them out: images/<slide>.tif beside the label table.

One row per slide; the pipeline tiles each slide from `source_file`, so no pixels are read here.

CAMELYON16: images/normal_NNN.tif and tumor_NNN.tif are the official training slides, labelled by their names;
images/test_NNN.tif are the test slides, labelled by evaluation/reference.csv (slide, Tumor or Normal, lesion
details; read with or without a header row). One slide per patient.
CAMELYON17: images/patient_PPP_node_N.tif, labelled by stages.csv (patient, stage, center: slide rows carry negative,
itc, micro or macro). The patient is the unit of splitting, so a patient's five nodes always share a split; the
centre is PPP // 20 (patients are numbered 20 per centre), checked against the table's center column.

Capped runs (max_slides, max_patients) keep a seeded, stratified subset. select_files names the slide files of
exactly the items read_items returns, from the label tables alone, so a download can fetch the tables (the entry's
`index` files) first and then only the slides the run needs.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from medprobe.datasets.adapters import label_column
from medprobe.splits import random_patient_split

C16_NAME = re.compile(r"(normal|tumor|test)_(\d{3})")
C16_CLASSES = {"tumor": 1, "normal": 0}
C17_NAME = re.compile(r"patient_(\d{3})_node_(\d)")
OFFICIAL_ORDER = ("trainval", "test")


def read_items(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    readers = {"camelyon16": _camelyon16, "camelyon17": _camelyon17}
    return readers[entry["labels"]["release"]](Path(root), entry, options)


def select_files(root: Path, entry: dict, options: dict) -> list[str]:
    """The slide files (relative names, as in the entry's file list) of the items read_items returns."""
    return read_items(root, entry, options)["source_file"].tolist()


def _cap(options: dict, name: str) -> int | None:
    cap = options.get(name)
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise ValueError(f"option {name}={cap!r} must be a positive integer or null")
    return cap


def _entry_slides(entry: dict) -> list[str]:
    """Slide names (file stems) of the entry's file list: the release less the files the organisers removed."""
    prefix = entry["labels"]["image_dir"] + "/"
    return [Path(f["name"]).stem for f in entry["source"]["files"] if f["name"].startswith(prefix)]


def capped(units: list[str], strata: dict[str, str], cap: int | None, seed) -> list[str]:
    """The first `cap` units (sorted) of a seeded order that deals the strata out in proportion; all if no cap.

    Each stratum's units are sorted, then shuffled by `seed` (anything numpy's default_rng accepts). The order first
    takes one unit of every stratum (so a small cap still holds every class), then, at each step, the next unit of
    the stratum furthest below its share of the units dealt so far (ties: first stratum in sorted order). A prefix
    of n >= the number of strata thus holds each stratum's share of n to within one unit, and at least one unit.
    Sorting first keeps the choice independent of listing order.
    """
    if cap is None or cap >= len(units):
        return sorted(units)
    rng = np.random.default_rng(seed)
    queues = {}
    for stratum in sorted({strata[unit] for unit in units}):
        members = sorted(unit for unit in units if strata[unit] == stratum)
        queues[stratum] = [members[i] for i in rng.permutation(len(members))]
    share = {stratum: len(queue) / len(units) for stratum, queue in queues.items()}
    taken = dict.fromkeys(queues, 0)
    for dealt in range(1, cap + 1):
        open_strata = [stratum for stratum in queues if taken[stratum] < len(queues[stratum])]
        stratum = max(open_strata, key=lambda s: (taken[s] == 0, share[s] * dealt - taken[s]))
        taken[stratum] += 1
    return sorted(unit for stratum, queue in queues.items() for unit in queue[:taken[stratum]])


# ---- CAMELYON16 ------------------------------------------------------------------------------------------------

def _stem(cell: str) -> str:
    """Reference tables spell slides 'test_001', 'Test_001' or 'test_001.tif'."""
    name = cell.strip().lower()
    return name[:-len(".tif")] if name.endswith(".tif") else name


def _reference_labels(path: Path, slides: list[str]) -> dict[str, int]:
    """Slide -> 0/1 from reference.csv; every test slide needs a row, a training slide's row must match its name."""
    rows = [row for row in csv.reader(path.read_text(encoding="utf-8-sig").splitlines()) if "".join(row).strip()]
    label_at, start = 1, 1
    if rows and not C16_NAME.fullmatch(_stem(rows[0][0])):  # a header row, e.g. image,class,type,...
        header = [cell.strip().lower() for cell in rows[0]]
        label_at, start = (header.index("class") if "class" in header else 1), 2
        rows = rows[1:]
    labels = {}
    for line, row in enumerate(rows, start=start):
        stem = _stem(row[0])
        value = row[label_at].strip().lower() if len(row) > label_at else ""
        if not C16_NAME.fullmatch(stem) or value not in C16_CLASSES:
            raise ValueError(f"{path}: row {line} is not '<slide>,Tumor|Normal,...': {','.join(row)!r}")
        if labels.setdefault(stem, C16_CLASSES[value]) != C16_CLASSES[value]:
            raise ValueError(f"{path}: row {line} gives {stem} a second, different label")
    contradicted = sorted(stem for stem, label in labels.items()
                          if not stem.startswith("test") and label != int(stem.startswith("tumor")))
    if contradicted:
        raise ValueError(f"{path}: the label of training slide(s) {contradicted[:5]} contradicts the slide's name")
    unlabelled = [stem for stem in slides if stem.startswith("test") and stem not in labels]
    if unlabelled:
        raise ValueError(f"{path}: no row for {len(unlabelled)} test slide(s), e.g. {unlabelled[:5]}")
    return labels


def _camelyon16(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    spec = entry["labels"]
    cap, seed = _cap(options, "max_slides"), options.get("split_seed", 0)
    slides = _entry_slides(entry)
    reference = _reference_labels(root / spec["reference"], slides)
    label = label_column(spec["task_label"])
    table = pd.DataFrame({"item_id": slides,
                          "split": ["test" if stem.startswith("test") else "trainval" for stem in slides]})
    table[label] = [reference[stem] if stem.startswith("test") else int(stem.startswith("tumor")) for stem in slides]
    kept = []
    for index, split in enumerate(OFFICIAL_ORDER):
        part = table[table["split"] == split]
        classes = dict(zip(part["item_id"], part[label].astype(str)))
        kept += capped(part["item_id"].tolist(), classes, cap, (seed, index))
    table = table.set_index("item_id").loc[sorted(kept)].reset_index()
    return pd.DataFrame({"item_id": table["item_id"], "patient_id": table["item_id"],
                         "source_file": [f"{spec['image_dir']}/{stem}.tif" for stem in table["item_id"]],
                         "split": table["split"], label: table[label].astype("int8")})


# ---- CAMELYON17 ------------------------------------------------------------------------------------------------

def _stages(path: Path, slides: list[str], spec: dict) -> pd.DataFrame:
    """The entry's slides with their stage and centre, from stages.csv; patient rows (pN stage) are not read."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in ("patient", "stage") if column not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")
    names = table["patient"].str.strip()
    is_slide = names.str.endswith(".tif")
    rows = table[is_slide].set_index(names[is_slide].str[:-len(".tif")])
    repeated = sorted(set(rows.index[rows.index.duplicated()]))
    if repeated:
        raise ValueError(f"{path}: slide(s) listed twice: {repeated[:5]}")
    absent = [stem for stem in slides if stem not in rows.index]
    if absent:
        raise ValueError(f"{path}: no row for {len(absent)} slide(s), e.g. {absent[:5]}")
    rows = rows.loc[slides]
    stages = rows["stage"].str.strip().str.lower()
    bad = sorted(set(stages) - set(spec["stage_values"]))
    if bad:
        raise ValueError(f"{path}: unknown stage(s) {bad}; expected {spec['stage_values']}")
    numbers = [int(C17_NAME.fullmatch(stem).group(1)) for stem in slides]
    centres = [number // spec["patients_per_centre"] for number in numbers]
    if "center" in rows.columns:
        listed = rows["center"].str.strip()
        wrong = [stem for stem, centre, given in zip(slides, centres, listed) if given and given != str(centre)]
        if wrong:
            raise ValueError(f"{path}: center column disagrees with the patient numbering "
                             f"({spec['patients_per_centre']} patients per centre) for {wrong[:5]}")
    return pd.DataFrame({"item_id": slides, "patient_number": numbers, "center": centres,
                         "stage": stages.to_numpy()})


def _camelyon17(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    spec = entry["labels"]
    cap, seed = _cap(options, "max_patients"), options.get("split_seed", 0)
    subset, itc, role = options.get("subset", "all"), options.get("itc", "positive"), options.get("role", "own")
    table = _stages(root / spec["stages"], _entry_slides(entry), spec)
    first, last = spec["subsets"][subset]
    table = table[table["patient_number"].between(first, last)]
    if itc == "exclude":
        table = table[table["stage"] != "itc"]
    label = label_column(spec["task_label"])
    table = table.assign(patient_id=[f"patient_{number:03d}" for number in table["patient_number"]],
                         **{label: (table["stage"] != "negative").astype("int8")})
    status = table.groupby("patient_id").agg(center=("center", "first"), positive=(label, "max"))
    strata = (status["center"].astype(str) + "/" + status["positive"].astype(str)).to_dict()
    kept = capped(list(strata), strata, cap, seed)
    table = table[table["patient_id"].isin(kept)].sort_values("item_id").reset_index(drop=True)
    if role == "transfer":
        split = pd.Series("test", index=table.index)
    else:
        split = random_patient_split(table["patient_id"], spec["own_fractions"], seed, pd.Series(strata))
    return pd.DataFrame({"item_id": table["item_id"], "patient_id": table["patient_id"],
                         "source_file": [f"{spec['image_dir']}/{stem}.tif" for stem in table["item_id"]],
                         "split": split.to_numpy(), label: table[label], "center": table["center"].astype("int64"),
                         "stage": table["stage"]})
