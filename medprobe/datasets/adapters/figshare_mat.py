"""Figshare brain tumour layout (Cheng et al.): one MATLAB v7.3 file `<n>.mat` per MRI slice, anywhere under the
dataset folder, each holding a struct with fields label (class code 1, 2, ...), PID (patient id), image (int16),
tumorBorder and tumorMask.

MATLAB v7.3 files are HDF5 behind a 512-byte MATLAB header, so h5py reads them. MATLAB stores arrays column-major,
so a 2-D array comes out of HDF5 transposed; it is transposed back so images have the orientation MATLAB shows.
Character arrays (PID) are stored as uint16 character codes. The tumour mask stays in the source files (the
registry entry says so with `mask_in_source`); this adapter reads only what classification needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from medprobe.datasets.adapters import label_column, per_file_images
from medprobe.io.images import Image, ImageReadError, window


def slice_files(root: Path) -> list[Path]:
    """The numbered slice files, in slice order (cvind.mat and other non-numbered files are not slices)."""
    return sorted((p for p in root.rglob("*.mat") if p.stem.isdigit()), key=lambda p: int(p.stem))


def read_items(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    spec = entry["labels"]
    classes = spec["classes"]
    files = slice_files(root)
    if not files:
        raise FileNotFoundError(f"{root}: no slice files <n>.mat found (the dataset's zips extract to 1.mat ... "
                                f"3064.mat)")
    stems = pd.Series([p.stem for p in files])
    dupes = stems[stems.duplicated()].tolist()
    if dupes:
        raise ValueError(f"{root}: slice number(s) {dupes[:5]} found in more than one folder")
    rows = []
    for path in files:
        with _open_struct(path, spec["struct"]) as struct:
            code = _label_code(path, spec["struct"], struct, len(classes))
            rows.append((path.stem, _patient_id(path, spec["struct"], struct),
                         path.relative_to(root).as_posix(), code))
    items = pd.DataFrame(rows, columns=["item_id", "patient_id", "source_file", "code"])
    items["split"] = ""
    for index, name in enumerate(classes, start=1):
        items[label_column(name)] = (items["code"] == index).astype("int8")
    return items.drop(columns="code")


def iter_images(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    read = partial(read_mat_image, struct=entry["labels"]["struct"], voi_fallback=settings["voi_fallback"],
                   percentiles=tuple(settings["percentiles"]))
    return per_file_images(root, items, read)


def read_mat_image(path: Path, struct: str, voi_fallback: str, percentiles: tuple[float, float]) -> Image:
    """The slice in MATLAB orientation, windowed onto [0, 1] like a DICOM without VOI tags (MR values have no
    fixed scale, so the window comes from the image itself)."""
    with _open_struct(path, struct) as group:
        if "image" not in group:
            raise ImageReadError(path, f"struct '{struct}' has no field 'image' (fields: {sorted(group)})")
        stored = group["image"]
        if not isinstance(stored, h5py.Dataset) or stored.ndim != 2 or stored.dtype.kind not in "iuf":
            raise ImageReadError(path, f"field '{struct}.image' is not a 2-D numeric array")
        values = np.asarray(stored[()], dtype=np.float64).T
    pixels = window(values, voi_fallback, percentiles)
    rows, cols = pixels.shape
    return Image(pixels.astype(np.float32), {"rows": rows, "cols": cols, "voi_source": voi_fallback})


@contextmanager
def _open_struct(path: Path, struct: str) -> Iterator[h5py.Group]:
    """The struct group of a v7.3 .mat file; anything unreadable is an ImageReadError naming the file."""
    try:
        file = h5py.File(path, "r")
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except OSError as exc:  # h5py signals a non-HDF5 or truncated file with OSError
        raise ImageReadError(path, f"not a readable MATLAB v7.3 (HDF5) file ({exc})") from exc
    with file:
        group = file.get(struct)
        if not isinstance(group, h5py.Group):
            raise ImageReadError(path, f"has no struct '{struct}' (top-level names: {sorted(file)})")
        yield group


def _field(path: Path, struct: str, group: h5py.Group, name: str) -> np.ndarray:
    if not isinstance(group.get(name), h5py.Dataset):
        raise ImageReadError(path, f"struct '{struct}' has no field '{name}' (fields: {sorted(group)})")
    return np.asarray(group[name][()]).ravel()


def _label_code(path: Path, struct: str, group: h5py.Group, n_classes: int) -> int:
    value = _field(path, struct, group, "label")
    if value.size != 1 or value[0] not in range(1, n_classes + 1):
        raise ImageReadError(path, f"'{struct}.label' is {value.tolist()}; expected one of 1..{n_classes}")
    return int(value[0])


def _patient_id(path: Path, struct: str, group: h5py.Group) -> str:
    codes = _field(path, struct, group, "PID")
    if codes.dtype.kind not in "iu":
        raise ImageReadError(path, f"'{struct}.PID' is not a MATLAB char array (dtype {codes.dtype})")
    patient = "".join(map(chr, codes.tolist())).strip()
    if not patient:
        raise ImageReadError(path, f"'{struct}.PID' is empty")
    return patient
