"""Your own data, declared with no code: a root folder plus a table (CSV, TSV or parquet) with one row per item.

The registry entry `user_table` is a template: `build_entry` fills it from the dataset's options (in the config, or
in a YAML file its `spec` option names), reading the table and its first file for what the data says itself:
the task's classes, the dimensionality (2-D images, volumes, slides), the modality, the channels. Every row is
checked by medprobe.datasets.validate before any heavy work; see `validate`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from medprobe.datasets.validate import (DIMENSIONALITY, Report, cell_text, check_declaration, read_item,
                                        validate_table)
from medprobe.io.images import ImageReadError
from medprobe.io.slides import SlideError
from medprobe.splits import random_patient_split

DEFAULT_COLUMNS = {"path": "path", "patient": "patient"}
SPLIT_COLUMN = "medprobe_split"  # the seeded split written into the table when it has none
TABLE_READERS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
DICOM_MODALITIES = {"CT": "ct", "MR": "mri", "CR": "xray", "DX": "xray", "DR": "xray", "RG": "xray", "PX": "xray",
                    "MG": "mammography", "US": "ultrasound", "PT": "pet", "SM": "pathology"}
# Problems that leave a row without a place in a patient-level split: it cannot be counted in any test set.
UNPLACEABLE = frozenset({"missing_patient", "duplicate_id", "bad_split", "patient_in_two_splits"})


class UserDatasetError(ValueError):
    """A user dataset declaration (not a row of its table) that medprobe cannot work with."""


def load_spec(path: str | Path) -> dict:
    """Options from a dataset YAML file; a relative `path` in it is relative to the file's own folder."""
    path = Path(path).expanduser()
    try:
        spec = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserDatasetError(f"dataset spec file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise UserDatasetError(f"dataset spec file {path} is not valid YAML: {err}") from None
    if not isinstance(spec, dict):
        raise UserDatasetError(f"dataset spec file {path} must hold a mapping of dataset options")
    if "spec" in spec:
        raise UserDatasetError(f"dataset spec file {path} names another spec file; options nest only once")
    from medprobe.config import ConfigError, validate_dataset_options

    try:
        validate_dataset_options(spec, f"dataset spec file {path}")
    except ConfigError as err:
        raise UserDatasetError(str(err)) from None
    if spec.get("path") and not Path(spec["path"]).expanduser().is_absolute():
        spec["path"] = str(path.parent / spec["path"])
    return spec


def root_folder(options: dict) -> Path:
    if not options.get("path"):
        raise UserDatasetError("a user dataset needs the option `path`: the folder its table's paths are relative to")
    return Path(options["path"]).expanduser()


def table_file(options: dict) -> Path:
    """The table: an absolute path, or one relative to the dataset's root folder."""
    if not options.get("table"):
        raise UserDatasetError("a user dataset needs the option `table`: a CSV, TSV or parquet file, one row per item")
    table = Path(options["table"]).expanduser()
    return table if table.is_absolute() else root_folder(options) / table


def read_table(path: Path) -> pd.DataFrame:
    """Every cell as text (ids like 007 keep their zeros); parquet keeps its own types, validate reads them as text."""
    if not path.is_file():
        raise UserDatasetError(f"dataset table {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in TABLE_READERS:
            return pd.read_csv(path, sep=TABLE_READERS[suffix], dtype=str, keep_default_na=False)
    except (ValueError, OSError) as err:
        raise UserDatasetError(f"dataset table {path} cannot be read: {err}") from None
    raise UserDatasetError(f"dataset table {path}: expected .csv, .tsv or .parquet, not {suffix or 'no suffix'}")


def declaration(options: dict) -> tuple[dict, dict]:
    """(column roles -> table columns, the task) with their defaults; a UserDatasetError for what cannot work."""
    if not options.get("task"):
        raise UserDatasetError("a user dataset needs its `task`: type (binary, multiclass, multilabel or "
                               "segmentation) and classes")
    task = {"name": "label", **options["task"]}
    given = options.get("columns") or {}
    role = "mask" if task.get("type") == "segmentation" else None if given.get("labels") else "label"
    columns = {**DEFAULT_COLUMNS, **({role: role} if role else {}), **given}
    try:
        check_declaration(columns, task)
    except ValueError as err:
        raise UserDatasetError(str(err)) from None
    return columns, task


def task_labels(columns: dict, task: dict) -> list[str]:
    """The entry's label names: the positive class of a binary task, every class otherwise."""
    kind, classes = check_declaration(columns, task)
    return classes[1:] if kind == "binary" else classes


def build_entry(template: dict, options: dict) -> dict:
    """The registry entry of one user dataset: the template plus what its options and files say."""
    columns, task = declaration(options)
    table = read_table(table_file(options))
    dimensionality, modality, channels = infer_kind(root_folder(options), table, columns, options)
    return {
        **template,
        "title": f"your dataset: {table_file(options).name}",
        "modality": modality,
        "dimensionality": dimensionality,
        "channels": channels,
        "tasks": {task["name"]: {"type": task["type"], "labels": task_labels(columns, task)}},
        "split": {"policy": "adapter"},
    }


def infer_kind(root: Path, table: pd.DataFrame, columns: dict, options: dict) -> tuple[str, str, int]:
    """(dimensionality, modality, channels): stated in the options, or read from the table's first existing file.

    Only what a file records is inferred (a DICOM's Modality tag, a slide's pyramid, a PNG's colour mode); a NIfTI
    volume does not say whether it is CT or MR, so its modality must be stated.
    """
    stated = {key: options.get(key) for key in ("dimensionality", "modality", "channels")}
    if all(stated.values()):
        return stated["dimensionality"], stated["modality"], stated["channels"]
    column = columns["path"]
    paths = [str(p) for p in table[column]] if column in table.columns else []
    first = next((root / p for p in paths if p and (root / p).exists()), None)
    if first is None:
        raise UserDatasetError(f"{root}: none of the table's {len(paths)} paths (column {column!r}) exists, so "
                               f"nothing can be inferred from the files; check the option `path`")
    try:
        kind, _ = read_item(first)
    except (ImageReadError, SlideError, OSError) as err:
        raise UserDatasetError(f"{first}: cannot infer the dataset's kind from its first file: "
                               f"{getattr(err, 'reason', None) or err}") from None
    dimensionality = stated["dimensionality"] or DIMENSIONALITY[kind]
    modality = stated["modality"] or _file_modality(first, kind, dimensionality)
    channels = stated["channels"] or _file_channels(first, kind, dimensionality)
    return dimensionality, modality, channels


def _file_modality(path: Path, kind: str, dimensionality: str) -> str:
    if dimensionality == "wsi":
        return "pathology"
    if kind in ("dicom", "dicom-series"):
        import pydicom

        first = path if kind == "dicom" else min(p for p in path.iterdir() if p.is_file())
        tag = str(pydicom.dcmread(first, stop_before_pixels=True, force=True).get("Modality", "")).upper()
        if tag:
            return DICOM_MODALITIES.get(tag, tag.lower())
    if dimensionality == "3d":
        raise UserDatasetError(f"{path}: a {kind} volume does not record whether it is CT or MR; state the dataset "
                               f"option `modality` (ct: Hounsfield window; mri or any other: percentile scaling)")
    return "unspecified"


def _file_channels(path: Path, kind: str, dimensionality: str) -> int:
    if dimensionality == "wsi":
        return 3
    if kind in ("png", "jpeg", "tiff"):
        from PIL import Image

        with Image.open(path) as image:
            return 3 if image.mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr") else 1
    if kind == "dicom":
        import pydicom

        samples = pydicom.dcmread(path, stop_before_pixels=True, force=True).get("SamplesPerPixel", 1)
        return 3 if int(samples) == 3 else 1
    return 1


def with_split(table: pd.DataFrame, columns: dict, task: dict, options: dict) -> tuple[pd.DataFrame, dict]:
    """The table and its column roles, with a seeded patient-level split when the table has no split column (the
    role `split`, or a column named split).

    Patients are stratified by the set of labels their rows carry, so every split gets its share of each class
    (to within about one patient per class); the table's own split, when given, is used exactly as it is.
    """
    if columns.get("split"):
        return table, columns
    if "split" in table.columns:  # a column named split is the split unless the roles name another
        return table, {**columns, "split": "split"}
    patients = table[columns["patient"]].map(cell_text) if columns["patient"] in table.columns else None
    if patients is None:
        return table, columns  # validation reports the missing column
    row_strata = _row_strata(table, columns)
    strata = row_strata.groupby(patients).agg(lambda values: "|".join(sorted(set(values)))) if row_strata is not None \
        else None
    fractions = options.get("split_fractions") or {"train": 0.7, "val": 0.15, "test": 0.15}
    table = table.copy()
    table[SPLIT_COLUMN] = random_patient_split(patients, fractions, options.get("split_seed", 0), strata).to_numpy()
    return table, {**columns, "split": SPLIT_COLUMN}


def _row_strata(table: pd.DataFrame, columns: dict) -> pd.Series | None:
    if columns.get("labels") and all(c in table.columns for c in columns["labels"]):
        return table[list(columns["labels"])].map(cell_text).agg("".join, axis=1)
    if columns.get("label") and columns["label"] in table.columns:
        return table[columns["label"]].map(cell_text)
    return None


def validate(options: dict, read_files: bool = True) -> tuple[Report, pd.DataFrame, dict]:
    """Check every row of a user dataset; returns the report, the table (with its split) and the column roles."""
    columns, task = declaration(options)
    path = table_file(options)
    table, columns = with_split(read_table(path), columns, task, options)
    root = root_folder(options)
    dimensionality = options.get("dimensionality") or infer_kind(root, table, columns, options)[0]
    report = validate_table(root, table, path.name, columns, task, read_files=read_files,
                            dimensionality=dimensionality)
    if columns["split"] == SPLIT_COLUMN:  # the seeded split left a class out: say how to change the split
        report.problems = [replace(p, message=f"{p.message} of the seeded split (split_seed "
                                              f"{options.get('split_seed', 0)}, split_fractions "
                                              f"{options.get('split_fractions')}); a larger share for that split, "
                                              f"another split_seed or a split column fixes it")
                           if p.check == "empty_class" else p for p in report.problems]
    return report, table, columns


def items_from_table(report: Report, table: pd.DataFrame, columns: dict, task: dict) -> pd.DataFrame:
    """The adapter's item table: every row with a place in the split, its problems (if any) as `skip_reason`.

    Rows without a place (no patient, a duplicate id, a patient in two splits, an unknown split) cannot be counted
    in any split's total; they are counted in the validation record instead.
    """
    kind, classes = check_declaration(columns, task)
    problems: dict[int, list] = {}
    for problem in report.problems:
        if not problem.dataset_level:
            problems.setdefault(problem.row - 2, []).append(problem)
    placeable = [i for i in range(len(table)) if not any(p.check in UNPLACEABLE for p in problems.get(i, []))]
    rows = table.iloc[placeable]
    text = {c: rows[c].map(cell_text) for c in rows.columns}
    items = pd.DataFrame({
        "item_id": text[columns.get("id") or columns["path"]],
        "patient_id": text[columns["patient"]],
        "source_file": text[columns["path"]],
        "split": text[columns["split"]],
        "skip_reason": ["; ".join(p.message for p in problems.get(i, [])) for i in placeable],
        "table_row": [i + 2 for i in placeable],
    })
    if kind == "segmentation":
        items["mask_file"] = text[columns["mask"]]
    else:
        for label, values in _label_values(text, columns, task, kind, classes).items():
            items[f"label_{label}"] = np.where(items["skip_reason"] == "", values, -1).astype("int8")
    items.attrs["validation"] = {
        "table": report.summary["table"],
        "n_rows": len(table),
        "n_ok": report.summary["n_ok"],
        "n_skipped": int((items["skip_reason"] != "").sum()),
        "n_unplaced": len(table) - len(placeable),
        "problems": [str(p) for p in report.problems],
    }
    return items.reset_index(drop=True)


def _label_values(text: dict, columns: dict, task: dict, kind: str, classes: list[str]) -> dict[str, np.ndarray]:
    """0/1 per label name, as the entry's tasks declare them (see task_labels)."""
    if columns.get("labels"):
        return {str(c): (text[c] == "1").to_numpy() for c in columns["labels"]}
    values = text[columns["label"]]
    if kind == "multilabel":
        names = values.map(lambda v: {n.strip() for n in v.split(task["separator"])})
        return {c: names.map(lambda found, c=c: c in found).to_numpy() for c in classes}
    return {c: (values == c).to_numpy() for c in task_labels(columns, task)}

