"""Volumes in the Medical Segmentation Decathlon layout (also nnU-Net v1's and AMOS22's): a folder holding
dataset.json, whose "labels" name the classes by voxel value and whose sections ("training"; AMOS also
"validation") list {"image", "label"} pairs of NIfTI files relative to that folder (imagesTr/ + labelsTr/,
imagesVa/ + labelsVa/).

Items come from dataset.json, never from listing folders: the MSD tars also hold macOS AppleDouble companions
(imagesTr/._liver_14.nii.gz) that a glob would take for volumes. dataset.json must name the classes (and, where
the entry lists them, the image channels) exactly as the registry entry does, so a class map that changed under
the entry stops the run instead of silently renaming organs.

Multi-channel tasks (BrainTumour: four MR sequences; Prostate: T2 and ADC) keep the channels on the 4th axis of
one file; the dataset option `channel` picks one, and read_items records it per item (column `channel`) so the
volumes read are the ones the item table says. Likewise the option `fold` of a "kfold" split policy is recorded
as `test_fold`. Neither MSD nor AMOS publishes patient ids, so every case is its own patient.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from medprobe.io.images import ImageReadError
from medprobe.datasets.adapters.volume_table import iter_masks  # noqa: F401  (same label-map files)
from medprobe.io.volumes import Volume, VolumeReadError, canonical_volume, open_nifti, read_nifti

DATASET_JSON = "dataset.json"
CASE_NUMBER = re.compile(r"(\d+)$")


def read_items(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    spec = entry["labels"]
    path = root / spec["folder"] / DATASET_JSON
    document = _read_dataset_json(path)
    _check_named(path, document, "labels", ["background", *spec["classes"]])
    if "channels" in spec:
        _check_named(path, document, "modality", spec["channels"])
    rows = [(*_case(path, section, index, pair), split)
            for section, split in spec["sections"].items()
            for index, pair in enumerate(_section(path, document, section))]
    items = pd.DataFrame(rows, columns=["item_id", "source_file", "mask_file", "split"])
    items.insert(1, "patient_id", items["item_id"])
    items["source_file"] = spec["folder"] + "/" + items["source_file"]
    items["mask_file"] = spec["folder"] + "/" + items["mask_file"]
    if "mri_from_case" in spec:  # AMOS: CT and MR cases share one folder, told apart by their number
        items = items[[_case_modality(path, case, spec["mri_from_case"]) == entry["modality"]
                       for case in items["item_id"]]].reset_index(drop=True)
        if items.empty:
            raise ValueError(f"{path}: no {entry['modality']} case in {list(spec['sections'])}")
    missing = [p for p in (*items["source_file"], *items["mask_file"]) if not (root / p).is_file()]
    if missing:
        raise ValueError(f"{path} lists {len(missing)} file(s) that are not under {root}, e.g. {missing[:5]}")
    if "channel" in entry.get("options", {}):
        items["channel"] = _option(options, entry, "channel")
    if entry["split"]["policy"] == "kfold":
        items["test_fold"] = _option(options, entry, "fold")
    return items


def iter_volumes(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    """(index, canonical Volume | ImageReadError) for every row, in order; 4-D files give the item's channel."""
    channels = entry["labels"].get("channels", [])
    for index, row in items.iterrows():
        path = root / row["source_file"]
        try:
            yield index, read_channel(path, int(row["channel"]), channels) if "channel" in row else read_nifti(path)
        except ImageReadError as err:
            yield index, err


def read_channel(path: Path, channel: int, names: list[str]) -> Volume:
    """One channel of a (X, Y, Z, C) NIfTI with C == len(names) as a canonical float32 Volume.

    read_nifti refuses 4-D files on purpose (it must not guess a channel); here the entry names the channels.
    """
    img, meta = open_nifti(path)
    if len(img.shape) != 4 or img.shape[3] != len(names):
        raise VolumeReadError(path, f"has shape {img.shape}; expected (X, Y, Z, {len(names)}) with channels "
                                    f"{', '.join(names)}")
    try:
        data = np.asanyarray(img.dataobj[..., channel])  # the proxy applies scl_slope/inter
    except (OSError, ValueError, EOFError) as exc:
        raise VolumeReadError(path, f"voxel data unreadable ({type(exc).__name__}: {exc})") from exc
    meta |= {"channel": channel, "channel_name": names[channel]}
    return canonical_volume(type(img)(data, img.affine, img.header), path, meta)


def _read_dataset_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a Decathlon-layout dataset is a folder holding {DATASET_JSON}, "
                                "imagesTr/ and labelsTr/")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(document).__name__}")
    return document


def _check_named(path: Path, document: dict, key: str, names: list[str]) -> None:
    """dataset.json's {"0": name, "1": name, ...} must be exactly the entry's names in index order."""
    expected = {str(index): name for index, name in enumerate(names)}
    if document.get(key) != expected:
        raise ValueError(f"{path}: \"{key}\" is {document.get(key)}, but the registry entry expects {expected}")


def _section(path: Path, document: dict, section: str) -> list:
    pairs = document.get(section)
    if not isinstance(pairs, list) or not pairs:
        raise ValueError(f"{path}: no '{section}' list of {{\"image\", \"label\"}} pairs")
    return pairs


def _case(path: Path, section: str, index: int, pair) -> tuple[str, str, str]:
    """(case id, image path, label path), the paths relative to dataset.json's folder without their "./"."""
    if not isinstance(pair, dict) or not all(isinstance(pair.get(key), str) for key in ("image", "label")):
        raise ValueError(f"{path}: {section}[{index}] is {pair!r}; expected {{\"image\": path, \"label\": path}}")
    image, label = (PurePosixPath(pair[key]) for key in ("image", "label"))
    for member in (image, label):
        if member.is_absolute() or ".." in member.parts or not member.name.endswith((".nii", ".nii.gz")):
            raise ValueError(f"{path}: {section}[{index}] names {str(member)!r}; expected a .nii(.gz) file "
                             "inside the dataset folder")
    return image.name.removesuffix(".gz").removesuffix(".nii"), image.as_posix(), label.as_posix()


def _case_modality(path: Path, case: str, mri_from: int) -> str:
    number = CASE_NUMBER.search(case)
    if number is None:
        raise ValueError(f"{path}: case {case!r} does not end in its number, which tells CT from MR cases")
    return "mri" if int(number.group(1)) >= mri_from else "ct"


def _option(options: dict, entry: dict, key: str) -> int:
    return int(options.get(key, entry["options"][key]["default"]))
