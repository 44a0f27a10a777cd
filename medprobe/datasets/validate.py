"""Validation of a user's own dataset table (root folder + one row per item) before any heavy work.

Every problem is collected rather than raised at the first, so a user fixes the table in one pass. Each names
the row as a spreadsheet shows it (header = row 1) and the file. Files are opened with the project's own
readers, so "readable here" means "readable by preprocess".
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from medprobe.io.dicom import read_dicom_image
from medprobe.io.dicom_series import read_dicom_series
from medprobe.io.images import ImageReadError, read_raster_image
from medprobe.io.slides import SlideError, open_slide
from medprobe.io.volumes import read_nifti, read_nifti_labels
from medprobe.splits import SPLITS

TASK_TYPES = ("binary", "multiclass", "multilabel", "segmentation")
POLICIES = ("fail", "skip")
ROLES = ("path", "patient", "id", "label", "labels", "mask", "split")
DATASET_CHECKS = frozenset({"missing_column", "empty_class"})  # no row to drop: fatal under every policy
SLIDE_SUFFIXES = frozenset({".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".bif"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
RASTER_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff"}
DIMENSIONALITY = {"dicom": "2d", "png": "2d", "jpeg": "2d", "tiff": "2d", "nifti": "3d", "dicom-series": "3d",
                  "slide": "wsi"}
READ_ERRORS = (ImageReadError, SlideError, OSError)
FIRST_ITEM_ROW = 2  # spreadsheet numbering: the header is row 1


class TableValidationError(ValueError):
    """A dataset table with problems the chosen policy does not allow; the message lists every one."""


@dataclass(frozen=True)
class Problem:
    """One failed check. row 0 = the whole dataset (a missing column, an empty class)."""

    row: int
    item_id: str | None
    file: str | None
    check: str
    message: str
    table: str = "table"

    @property
    def dataset_level(self) -> bool:
        return self.check in DATASET_CHECKS

    def __str__(self) -> str:
        if self.row == 0:
            return f"{self.table}: {self.message}"
        where = [f"item {self.item_id}"] if self.item_id and self.item_id != self.file else []
        where += [self.file] if self.file else []
        detail = f" ({', '.join(where)})" if where else ""
        return f"{self.table} row {self.row}{detail}: {self.message}"


@dataclass
class Report:
    """The problems found, the rows that pass every row-level check, and what the table holds."""

    problems: list[Problem]
    items: pd.DataFrame
    summary: dict

    @property
    def bad_rows(self) -> list[int]:
        return sorted({p.row for p in self.problems if not p.dataset_level})

    def format(self) -> str:
        s = self.summary
        lines = [f"{s['table']}: {s['n_rows']} row(s), {s['n_ok']} ok, {s['n_rows'] - s['n_ok']} with problems"]
        for group, counts in s["classes"].items():
            total = s["splits"].get(group, s["n_ok"])
            detail = ", ".join(f"{name}: {n}" for name, n in counts.items())
            lines.append(f"  {group}: {total} item(s)" + (f" ({detail})" if detail else ""))
        if s["modalities"]:
            lines.append("  modalities: " + ", ".join(f"{m} {n}" for m, n in s["modalities"].items())
                         + "; dimensionality: " + ", ".join(s["dimensionality"]))
        for modality, size in s["sizes"].items():
            low, high = ("x".join(map(str, size[k])) for k in ("min", "max"))
            lines.append(f"  sizes ({modality}): {low}" + ("" if low == high else f" .. {high}"))
        lines.append(f"problems ({len(self.problems)}):" if self.problems else "no problems")
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)

    def raise_if_problems(self, policy: str = "fail") -> int:
        """Raise TableValidationError unless `policy` tolerates every problem; return the number of skipped rows."""
        if policy not in POLICIES:
            raise ValueError(f"validation policy must be one of {POLICIES}, got {policy!r}")
        fatal = self.problems if policy == "fail" else [p for p in self.problems if p.dataset_level]
        if fatal:
            raise TableValidationError(
                f"{self.summary['table']}: {len(self.problems)} problem(s) "
                f"({len(fatal)} not skippable under policy {policy!r}):\n" + "\n".join(str(p) for p in self.problems))
        return len(self.bad_rows)


def validate_table(root: Path, table: pd.DataFrame, table_name: str, columns: dict, task: dict,
                   read_files: bool = True, dimensionality: str | None = None) -> Report:
    """Check every row of `table` against the files under `root` and the declared `task`.

    columns maps roles to table columns: path, patient (required), id (default: the path), label, labels (a list
    of 0/1 columns, one per label), mask, split. task: type (binary | multiclass | multilabel | segmentation),
    classes (the declared class or label names), separator (multi-label names joined in one column), negative (the
    multi-label cell value meaning no label applies, e.g. "No Finding").
    read_files=False checks only that files exist. dimensionality ("2d" | "3d" | "wsi"): a file of another kind (a
    volume among X-rays) is a problem of its row.
    """
    root = Path(root)
    kind, classes = check_declaration(columns, task)
    table = table.reset_index(drop=True)
    problems: list[Problem] = []
    needed = [c for role in ROLES if columns.get(role) for c in _as_list(columns[role])]
    missing = [c for c in dict.fromkeys(needed) if c not in table.columns]
    if missing:
        found = [str(c) for c in table.columns]
        problems = [Problem(0, None, None, "missing_column", f"missing column {c!r}; found {found}", table_name)
                    for c in missing]
        return Report(problems, table.iloc[0:0], _summary(table_name, len(table), table.iloc[0:0], {}, {}, None))

    text = {c: table[c].map(cell_text) for c in dict.fromkeys(needed)}
    paths = text[columns["path"]]
    ids = text[columns.get("id") or columns["path"]]

    def add(i: int, check: str, message: str, file: str | None) -> None:
        problems.append(Problem(i + FIRST_ITEM_ROW, ids[i], file, check, message, table_name))

    seen: dict[int, tuple[str, tuple[int, ...]]] = {}
    positives: dict[int, list[str]] = {}
    for i in tqdm(range(len(table)), desc=f"validate {table_name}", unit="row",
                  disable=not read_files or len(table) < 500):
        if not text[columns["patient"]][i]:
            add(i, "missing_patient", "missing patient id", paths[i] or None)
        image = _check_file(root, paths[i], read_files, False, lambda check, msg: add(i, check, msg, paths[i] or None))
        if image and dimensionality and DIMENSIONALITY[image[0]] != dimensionality and not (
                dimensionality == "wsi" and image[0] in RASTER_SUFFIXES.values()):  # plain images tiled as slides
            add(i, "wrong_kind", f"a {image[0]} file ({DIMENSIONALITY[image[0]]}) in a {dimensionality} dataset",
                paths[i])
            image = None
        if image:
            seen[i] = image
        if kind == "segmentation":
            mask_path = text[columns["mask"]][i]
            if not mask_path:
                add(i, "missing_label", "missing mask path", None)
                continue
            mask = _check_file(root, mask_path, read_files, True, lambda check, msg: add(i, check, msg, mask_path))
            if image and mask and image[1] != mask[1]:
                add(i, "mask_mismatch", f"mask shape {_shape(mask[1])} does not match image shape "
                                        f"{_shape(image[1])} ({paths[i]})", mask_path)
        else:
            positives[i] = _check_labels(i, text, columns, task, classes, lambda check, msg: add(i, check, msg,
                                                                                                   paths[i] or None))

    for i, others in _duplicates(ids).items():
        add(i, "duplicate_id", f"duplicate item id {ids[i]!r} (also row(s) {_rows(others)})", paths[i] or None)

    splits = text[columns["split"]] if columns.get("split") else None
    if splits is not None:
        for i in splits.index[~splits.isin(SPLITS)]:
            add(i, "bad_split", f"split {splits[i]!r} is not one of {', '.join(SPLITS)}", paths[i] or None)
        for i, message in _leaking_patients(text[columns["patient"]], splits).items():
            add(i, "patient_in_two_splits", message, paths[i] or None)

    bad = {p.row - FIRST_ITEM_ROW for p in problems}
    ok = [i for i in range(len(table)) if i not in bad]
    items = table.iloc[ok].copy()
    if read_files:
        items["modality"] = [seen[i][0] for i in ok]
        items["shape"] = [_shape(seen[i][1]) for i in ok]
    # a split named in the table stays in the summary (and is checked for empty classes) when skips empty it
    named = [s for s in SPLITS if (splits == s).any()] if splits is not None else []
    groups = {s: [i for i in ok if splits[i] == s] for s in named} if splits is not None else {"all": ok}
    counts = {s: Counter(c for i in rows for c in positives.get(i, [])) for s, rows in groups.items()}
    if splits is not None and kind != "segmentation":
        problems += [Problem(0, None, None, "empty_class", f"class {c!r} has no item in split {s!r}", table_name)
                     for s in groups for c in classes if not counts[s][c]]
    class_counts = {s: {c: counts[s][c] for c in classes if kind != "segmentation"} for s in groups}
    summary = _summary(table_name, len(table), items, class_counts, {i: seen[i] for i in ok if i in seen},
                       {s: len(rows) for s, rows in groups.items()} if splits is not None else None)
    return Report(problems, items, summary)


def read_item(path: Path, labels: bool = False) -> tuple[str, tuple[int, ...]]:
    """(modality, shape) of one item, opened with the reader preprocess uses; shape is (rows, cols) for 2-D files.

    Raises ImageReadError, SlideError or OSError, whose message says why the file cannot be used.
    """
    name = path.name.lower()
    if path.is_dir():
        return "dicom-series", read_dicom_series(path).data.shape
    if name.endswith((".nii", ".nii.gz")):
        return "nifti", (read_nifti_labels(path) if labels else read_nifti(path)).data.shape
    if path.suffix.lower() in DICOM_SUFFIXES:
        return "dicom", read_dicom_image(path).pixels.shape[:2]
    if path.suffix.lower() in SLIDE_SUFFIXES or path.suffix.lower() in (".tif", ".tiff"):
        try:
            with open_slide(path) as slide:
                if slide.level_count > 1 or path.suffix.lower() in SLIDE_SUFFIXES:
                    width, height = slide.dimensions
                    return "slide", (height, width)
        except SlideError:
            if path.suffix.lower() in SLIDE_SUFFIXES:
                raise
    if path.suffix.lower() in RASTER_SUFFIXES:
        meta = read_raster_image(path, channels=1).meta
        return RASTER_SUFFIXES[path.suffix.lower()], (meta["rows"], meta["cols"])
    raise ImageReadError(path, f"unsupported file type; expected a DICOM file or series folder, NIfTI (.nii, .nii.gz), "
                               f"{', '.join(RASTER_SUFFIXES)} or a slide ({', '.join(sorted(SLIDE_SUFFIXES))})")


def check_declaration(columns: dict, task: dict) -> tuple[str, list[str]]:
    """The task type and its class names; a ValueError for a declaration (not a table) that cannot be checked."""
    kind = task.get("type")
    if kind not in TASK_TYPES:
        raise ValueError(f"task type must be one of {TASK_TYPES}, got {kind!r}")
    unknown = sorted(set(columns) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown column role(s) {unknown}; expected some of {ROLES}")
    required = {"segmentation": ["mask"], "multilabel": []}.get(kind, ["label"])
    absent = [role for role in ("path", "patient", *required) if not columns.get(role)]
    if kind == "multilabel" and not (columns.get("label") or columns.get("labels")):
        absent.append("label (with task separator) or labels")
    if absent:
        raise ValueError(f"a {kind} dataset needs column role(s) {absent}")
    if kind == "multilabel" and columns.get("labels"):
        return kind, [str(c) for c in columns["labels"]]
    classes = [cell_text(c) for c in task.get("classes") or []]
    if kind != "segmentation" and not classes:
        raise ValueError(f"a {kind} dataset needs its declared classes (task 'classes')")
    if kind == "binary" and len(classes) != 2:
        raise ValueError(f"a binary task declares exactly 2 classes, got {classes}")
    if kind == "multilabel" and not task.get("separator"):
        raise ValueError("a multilabel task with labels in one column needs a 'separator'")
    return kind, classes


def _check_file(root: Path, relative: str, read_files: bool, labels: bool, add) -> tuple[str, tuple] | None:
    if not relative:
        add("missing_file", "empty path")
    elif not (root / relative).exists():
        add("missing_file", "missing mask file" if labels else "missing file")
    elif read_files:
        try:
            return read_item(root / relative, labels)
        except READ_ERRORS as exc:
            add("unreadable", f"unreadable {'mask ' if labels else ''}file: {_reason(root / relative, exc)}")
    return None


def _check_labels(i: int, text: dict, columns: dict, task: dict, classes: list[str], add) -> list[str]:
    """The row's positive classes (or labels); adds a problem for a missing or undeclared value."""
    if columns.get("labels"):
        values = {c: text[c][i] for c in columns["labels"]}
        for column, value in values.items():
            if not value:
                add("missing_label", f"missing value in label column {column!r}")
            elif value not in ("0", "1"):
                add("bad_label", f"label column {column!r} holds {value!r}; expected 0 or 1")
        return [str(c) for c, value in values.items() if value == "1"]
    value = text[columns["label"]][i]
    if task["type"] == "multilabel" and value and value == task.get("negative"):
        return []  # the table's way of saying "no label applies" (NIH's "No Finding")
    names = [v.strip() for v in value.split(task["separator"])] if task["type"] == "multilabel" else [value]
    names = [n for n in names if n]
    if not names:
        add("missing_label", "missing label")
    undeclared = [n for n in names if n not in classes]
    if undeclared:
        add("bad_label", f"label(s) {undeclared} not in the declared classes {classes}")
    return [n for n in names if n in classes]


def _duplicates(ids: pd.Series) -> dict[int, list[int]]:
    """Each row whose id another row also has -> the other rows."""
    rows = defaultdict(list)
    for i, item_id in ids.items():
        rows[item_id].append(i)
    return {i: [j for j in group if j != i] for group in rows.values() if len(group) > 1 for i in group}


def _leaking_patients(patients: pd.Series, splits: pd.Series) -> dict[int, str]:
    """Each row of a patient whose rows sit in more than one split -> a message naming those splits and rows."""
    valid = splits.isin(SPLITS) & (patients != "")
    out = {}
    for patient, group in splits[valid].groupby(patients[valid]):
        if group.nunique() > 1:
            where = "; ".join(f"{s}: row(s) {_rows(rows.index)}" for s, rows in group.groupby(group))
            out.update({i: f"patient {patient!r} is in more than one split ({where})" for i in group.index})
    return out


def _summary(table_name: str, n_rows: int, items: pd.DataFrame, class_counts: dict, seen: dict,
             split_counts: dict | None) -> dict:
    sizes: dict[str, list[tuple[int, ...]]] = defaultdict(list)
    for modality, shape in seen.values():
        sizes[modality].append(shape)
    return {
        "table": table_name,
        "n_rows": n_rows,
        "n_ok": len(items),
        "splits": split_counts or {},
        "classes": class_counts,
        "modalities": dict(sorted(Counter(m for m, _ in seen.values()).items())),
        "dimensionality": sorted({DIMENSIONALITY[m] for m, _ in seen.values()}),
        "sizes": {m: {"min": [min(axis) for axis in zip(*shapes)], "max": [max(axis) for axis in zip(*shapes)]}
                  for m, shapes in sorted(sizes.items())},
    }


def _reason(path: Path, exc: Exception) -> str:
    """The reader's reason, with the slice file named when a series fails on one of its files."""
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    failing = getattr(exc, "path", None)
    if failing and Path(failing) != path and Path(failing).parent == path:
        return f"{Path(failing).name}: {reason}"
    return reason


def cell_text(value) -> str:
    """A cell as the user typed it: '' for empty, '1' (not '1.0') for an integer that pandas read as float."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _as_list(value) -> list[str]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _rows(positions) -> str:
    return ", ".join(str(i + FIRST_ITEM_ROW) for i in positions)


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))
