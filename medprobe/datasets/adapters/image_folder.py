"""Class-per-folder layouts: images in <root>/<prefix>/<class folder>/..., or each class folder packed as one
archive <root>/<prefix>/<class folder><container> (Kvasir-Capsule's labelled_images/pylorus.tar.gz), whose image
members may sit under any sub-folder. Another dataset in this layout is just a registry entry.

The entry's `labels` block:
  prefix, extensions    where the class folders are, and which files in them are images
  container             optional archive suffix (".tar.gz", ".tar") when class folders are packed
  classes               folder name -> class label; the labels of the (multiclass) task
  excluded              folder name -> class name of folders read but not used: their images are counted and logged
  patient_pattern       optional regex with a `patient` group, matched against the file stem (else patient = item)
  split_files           optional split name -> CSV of (file name, label) rows, e.g. Kvasir-Capsule's official folds;
  split_columns, split_labels    its column names, and how it spells each class label
A file found in more than one class folder has no single class: it is counted and left out, like excluded ones.
With split files, each item takes the split of the file listing it, and that file's label must be its folder's
class. A patient listed in several split files would leak between them, so all its items go to the split that
lists most of them (ties to the later split); the original assignment stays in the column official_split.
"""

from __future__ import annotations

import logging
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pandas as pd

from medprobe.datasets.adapters import label_column, per_file_images, require_files
from medprobe.io.images import Image, ImageReadError, read_raster_image

log = logging.getLogger(__name__)
APPLE_DOUBLE = "._"  # macOS resource-fork companions of real files; never images


def read_items(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    spec = entry["labels"]
    classes, excluded = spec["classes"], spec.get("excluded", {})
    task_labels = [lab for task in entry["tasks"].values() for lab in task["labels"]]
    if sorted(task_labels) != sorted(classes.values()):
        raise ValueError(f"entry '{entry['title']}': task labels {task_labels} must be the classes "
                         f"{list(classes.values())}")
    container = spec.get("container", "")
    check_layout(root, entry, options)
    _refuse_unknown_folders(root, spec)
    found = pd.DataFrame(
        [(folder, *where) for folder in [*classes, *excluded]
         if (root / spec["prefix"] / f"{folder}{container}").exists()
         for where in _images(root, spec, folder)],
        columns=["folder", "source_file", "member"])
    found["name"] = [Path(member or source).name for source, member in zip(found["source_file"], found["member"])]
    found["where"] = [f"{source}:{member}" if member else source
                      for source, member in zip(found["source_file"], found["member"])]
    found["item_id"] = found["name"].map(lambda name: Path(name).stem)
    folders_per_file = found.groupby("item_id")["folder"].transform("nunique")
    multi = found[folders_per_file > 1]
    dropped = found[(folders_per_file == 1) & found["folder"].isin(list(excluded))]
    items = found[(folders_per_file == 1) & found["folder"].isin(list(classes))].reset_index(drop=True)
    if items.empty:
        raise ValueError(f"{root / spec['prefix']}: no {'/'.join(spec['extensions'])} images in the class folders. "
                         f"Expected layout:\n{expected_layout(spec)}")
    dupes = items["item_id"][items["item_id"].duplicated()].tolist()
    if dupes:
        raise ValueError(f"{root / spec['prefix']}: file(s) found twice in the same class folder, e.g. {dupes[:5]}")
    counts = {excluded[folder]: int((dropped["folder"] == folder).sum()) for folder in excluded}
    counts["in more than one class folder"] = int(multi["item_id"].nunique())
    if any(counts.values()):
        log.warning("%s: left out %s (entry labels.excluded: %s)", root / spec["prefix"], counts,
                    sorted(excluded.values()))
    items["patient_id"] = _patients(items, spec)
    items["class"] = items["folder"].map(classes)
    for label in classes.values():
        items[label_column(label)] = (items["class"] == label).astype("int8")
    if "split_files" in spec:
        items = _official_split(root, spec, items, set(multi["name"]) | set(dropped["name"]))
    else:
        items["split"] = ""
    keep = ["item_id", "patient_id", "source_file", "split", *(["official_split"] if "split_files" in spec else []),
            *([] if not container else ["member"]), *(label_column(label) for label in classes.values())]
    items = items[keep]
    items.attrs["excluded"] = counts
    return items


def check_layout(root: Path, entry: dict, options: dict) -> None:
    """Every used class folder (or archive) and split file; excluded folders may be absent."""
    spec = entry["labels"]
    container = spec.get("container", "")
    required = [*(f"{spec['prefix']}/{folder}{container}" for folder in spec["classes"]),
                *spec.get("split_files", {}).values()]
    require_files(root, required, entry["source"].get("layout") or expected_layout(spec))


def expected_layout(spec: dict) -> str:
    container = spec.get("container", "")
    where = f"<class folder>{container}   (members <any folder>/<image>)" if container else "<class folder>/<image>"
    lines = [f"{spec['prefix']}/{where}",
             f"  class folders: {', '.join([*spec['classes'], *spec.get('excluded', {})])}",
             f"  images: {', '.join(spec['extensions'])}"]
    columns = ", ".join(spec.get("split_columns", {}).values())
    lines += [f"{file}   (columns {columns})" for file in spec.get("split_files", {}).values()]
    return "\n".join(lines)


def _refuse_unknown_folders(root: Path, spec: dict) -> None:
    container = spec.get("container", "")
    known = {*spec["classes"], *spec.get("excluded", {})}
    present = [path.name.removesuffix(container) for path in (root / spec["prefix"]).iterdir()
               if (path.is_file() and container and path.name.endswith(container))
               or (path.is_dir() and not container)]
    unknown = sorted(set(present) - known)
    if unknown:
        raise ValueError(f"{root / spec['prefix']}: class folder(s) {unknown} are neither in the entry's classes nor "
                         f"excluded; expected layout:\n{expected_layout(spec)}")


def _images(root: Path, spec: dict, folder: str) -> Iterator[tuple[str, str]]:
    """(source_file, member) of every image of one class folder; member is '' for plain folders."""
    extensions = tuple(ext.lower() for ext in spec["extensions"])
    container = spec.get("container", "")
    path = root / spec["prefix"] / f"{folder}{container}"

    def wanted(name: str) -> bool:
        base = name.rsplit("/", 1)[-1]
        return base.lower().endswith(extensions) and not base.startswith(APPLE_DOUBLE)

    if not container:
        for file in sorted(path.rglob("*")):
            if file.is_file() and wanted(file.name):
                yield file.relative_to(root).as_posix(), ""
        return
    source = path.relative_to(root).as_posix()
    try:
        with tarfile.open(path) as tar:
            members = sorted(info.name for info in tar if info.isfile() and wanted(info.name))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable archive ({type(exc).__name__}: {exc})") from exc
    for member in members:
        yield source, member


def _patients(items: pd.DataFrame, spec: dict) -> pd.Series:
    pattern = spec.get("patient_pattern")
    if not pattern:
        return items["item_id"]
    matches = items["item_id"].map(re.compile(pattern).fullmatch)
    bad = items.loc[matches.isna(), "where"].tolist()
    if bad:
        raise ValueError(f"file name(s) {bad[:5]} do not match the entry's patient_pattern {pattern!r}")
    return matches.map(lambda match: match.group("patient"))


def _official_split(root: Path, spec: dict, items: pd.DataFrame, left_out: set[str]) -> pd.DataFrame:
    file_column, label_column_name = spec["split_columns"]["file"], spec["split_columns"]["label"]
    listed = []
    for split, file in spec["split_files"].items():
        table = pd.read_csv(root / file, dtype=str, keep_default_na=False)
        missing = [c for c in (file_column, label_column_name) if c not in table.columns]
        if missing:
            raise ValueError(f"{root / file}: missing column(s) {missing}; found {list(table.columns)}")
        listed.append(pd.DataFrame({"name": table[file_column], "listed_label": table[label_column_name],
                                    "official_split": split, "split_file": file}))
    listed = pd.concat(listed, ignore_index=True)
    listed = listed[~listed["name"].isin(left_out)]
    unknown = sorted(set(listed["name"]) - set(items["name"]))
    if unknown:
        raise ValueError(f"{len(unknown)} file(s) in {sorted(set(listed['split_file']))} are not among the images "
                         f"under {root / spec['prefix']}, e.g. {unknown[:5]}")
    twice = listed["name"][listed["name"].duplicated()].tolist()
    if twice:
        raise ValueError(f"file(s) listed more than once in {sorted(spec['split_files'].values())}, e.g. {twice[:5]}")
    items = items.merge(listed, on="name", how="left")
    unlisted = items.loc[items["official_split"].isna(), "where"].tolist()
    if unlisted:
        raise ValueError(f"{len(unlisted)} image(s) are in no split file {sorted(spec['split_files'].values())}, "
                         f"e.g. {unlisted[:5]}")
    expected = items["class"].map(spec["split_labels"])
    wrong = items[items["listed_label"] != expected]
    if len(wrong):
        examples = [f"{row.name} is '{row.listed_label}' in {row.split_file} but in class folder '{row.folder}'"
                    for row in wrong.head(5).itertuples()]
        raise ValueError(f"{len(wrong)} image(s) disagree with the split files on their class: {'; '.join(examples)}")
    order = {split: rank for rank, split in enumerate(spec["split_files"])}
    counts = items.groupby(["patient_id", "official_split"]).size().reset_index(name="n")
    counts["rank"] = counts["official_split"].map(order)
    majority = counts.sort_values(["patient_id", "n", "rank"]).groupby("patient_id").tail(1)
    items["split"] = items["patient_id"].map(majority.set_index("patient_id")["official_split"])
    moved = items[items["split"] != items["official_split"]]
    if len(moved):
        log.warning("%d image(s) of %d patient(s) listed in more than one split file moved to the split listing most "
                    "of that patient's images", len(moved), moved["patient_id"].nunique())
    return items


def iter_images(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    read = partial(read_raster_image, channels=entry.get("channels", 3))
    if not entry["labels"].get("container"):
        return per_file_images(root, items, read)
    return _archive_images(root, items, read)


def _archive_images(root: Path, items: pd.DataFrame, read) -> Iterator[tuple[int, Image | ImageReadError]]:
    """Archive members are extracted to a temporary folder, one pass per archive, then read in the items' order:
    compressed tar archives cannot be read out of order without decompressing them again and again."""
    with tempfile.TemporaryDirectory(prefix="medprobe-members-") as tmp:
        extracted: dict[tuple[str, str], Path] = {}
        broken: dict[str, str] = {}
        for archive, group in items.groupby("source_file", sort=True):
            wanted = set(group["member"])
            try:
                with tarfile.open(root / archive) as tar:
                    for info in tar:
                        if info.isfile() and info.name in wanted:
                            target = Path(tmp) / f"{len(extracted)}{Path(info.name).suffix}"
                            with tar.extractfile(info) as source, open(target, "wb") as copy:
                                shutil.copyfileobj(source, copy)
                            extracted[(archive, info.name)] = target
            except (tarfile.TarError, OSError, EOFError) as exc:
                broken[archive] = f"archive unreadable ({type(exc).__name__}: {exc})"
        for index, archive, member in zip(items.index, items["source_file"], items["member"]):
            name = f"{root / archive}:{member}"
            path = extracted.get((archive, member))
            if path is None:
                yield index, ImageReadError(name, broken.get(archive, "member not found in the archive"))
                continue
            try:
                yield index, read(path)
            except ImageReadError as err:
                yield index, ImageReadError(name, err.reason)
