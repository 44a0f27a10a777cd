"""MedMNIST+ layout: one .npz per set and size (`<flag>.npz` at 28 px, `<flag>_<size>.npz` otherwise) holding the
official splits as arrays `<split>_images`, uint8 (N, S, S) or (N, S, S, 3) for 2-D sets and (N, S, S, S) for 3-D
sets, and `<split>_labels`, one class index per image (N, 1) or 0/1 flags (N, L) for multi-label sets.

Images and volumes are streamed row by row out of the .npy members inside the zip, never loaded whole: at 224 px
the big sets do not fit in memory (pathmnist_224 is 16 GB of pixels). Only the small label arrays are read at once.

MedMNIST publishes no voxel geometry. A volume's first axis is its axial one (MedMNIST's maintainers, GitHub
MedMNIST/MedMNIST issue #17), so each `volume[k]` is taken as an axial slice shown as MedMNIST shows it (rows run
anterior to posterior, columns patient right to left) with k rising superiorly, on a 1 mm isotropic grid: the
canonical RAS+ volume's axial slices are then exactly MedMNIST's frames.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from medprobe.datasets.adapters import label_column
from medprobe.io.images import Image, ImageReadError
from medprobe.io.volumes import Volume, canonical_volume
from medprobe.splits import SPLITS

NPZ_ERRORS = (OSError, EOFError, ValueError, zlib.error, zipfile.BadZipFile)
GEOMETRY_NOTE = "none published; assumed: 1 mm isotropic, axis 0 axial (S), rows anterior-posterior, cols right-left"


def npz_file(entry: dict, options: dict) -> str:
    """The entry's file for the chosen `size` option (its download file entry's name)."""
    size = options.get("size", entry["options"]["size"]["default"])
    names = [f["name"] for f in entry["source"]["files"] if f.get("when", {}).get("size") == size]
    if not names:
        choices = entry["options"]["size"]["choices"]
        raise ValueError(f"{entry['title']}: no file for size {size!r}; the published sizes are {choices}")
    return names[0]


class NpyRows:
    """The rows of one .npy member of an open .npz, read in order from a stream over the (stored or deflated) member.

    A jump back re-reads the member from its start, since a deflate stream cannot seek; reading rows in increasing
    order, as preprocess does, decompresses each member once.
    """

    def __init__(self, archive: zipfile.ZipFile, path: Path, key: str):
        self.archive, self.member, self.where = archive, f"{key}.npy", f"{path}: array '{key}'"
        if self.member not in archive.namelist():
            found = sorted(n.removesuffix(".npy") for n in archive.namelist())
            raise ValueError(f"{path}: no array '{key}' (the file holds {found})")
        self.stream = archive.open(self.member)
        try:
            version = np.lib.format.read_magic(self.stream)
            if version == (1, 0):
                self.shape, fortran, self.dtype = np.lib.format.read_array_header_1_0(self.stream)
            elif version == (2, 0):
                self.shape, fortran, self.dtype = np.lib.format.read_array_header_2_0(self.stream)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except NPZ_ERRORS as exc:
            self.close()
            raise ValueError(f"{self.where}: unreadable .npy header ({exc})") from exc
        if fortran:
            self.close()
            raise ValueError(f"{self.where}: stored in Fortran order, so its rows cannot be streamed")
        if not self.shape or self.dtype.hasobject:
            self.close()
            raise ValueError(f"{self.where}: not an array of rows of numbers ({self.dtype} {self.shape})")
        self.start = self.stream.tell()
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self.next_row = 0
        self.failed_at: tuple[int, str] | None = None  # a corrupt stream stays corrupt past the first bad row

    def read_all(self) -> np.ndarray:
        """The whole array, then closes the stream; for the small label arrays only."""
        try:
            data = self.stream.read(self.shape[0] * self.row_bytes)
        except NPZ_ERRORS as exc:
            raise ValueError(f"{self.where}: unreadable ({exc})") from exc
        finally:
            self.close()
        if len(data) < self.shape[0] * self.row_bytes:
            raise ValueError(f"{self.where}: truncated")
        return np.frombuffer(data, dtype=self.dtype).reshape(self.shape)

    def row(self, index: int) -> np.ndarray:
        where = f"{self.where}[{index}]"
        if not 0 <= index < self.shape[0]:
            raise ImageReadError(where, f"no such row; the array has {self.shape[0]}")
        if self.failed_at and index >= self.failed_at[0]:
            raise ImageReadError(where, self.failed_at[1])
        try:
            if self.stream is None:
                self.stream = self.archive.open(self.member)
            if index != self.next_row:
                self.stream.seek(self.start + index * self.row_bytes)
            data = self.stream.read(self.row_bytes)
            if len(data) < self.row_bytes:
                raise EOFError(f"member ends inside row {index}")
        except NPZ_ERRORS as exc:
            reason = f"corrupt or truncated .npz member ({type(exc).__name__}: {exc})"
            self.failed_at = (index, reason)
            self.close()  # reopened, from the start, for an earlier row
            raise ImageReadError(where, reason) from exc
        self.next_row = index + 1
        return np.frombuffer(data, dtype=self.dtype).reshape(self.shape[1:])

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.stream, self.next_row = None, -1


def _open(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: MedMNIST file not found; the download stage places it there")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path}: not a readable .npz ({exc})") from exc


def _image_rows(archive: zipfile.ZipFile, path: Path, key: str, entry: dict, size: int) -> int:
    """Checks an images array's header (dtype, shape) without reading its pixels; returns its row count."""
    rows = NpyRows(archive, path, key)
    rows.close()
    if entry["dimensionality"] == "3d":
        expected = (size, size, size)
    else:
        expected = (size, size, 3) if entry["channels"] == 3 else (size, size)
    if rows.dtype != np.uint8 or rows.shape[1:] != expected:
        raise ValueError(f"{rows.where}: expected uint8 images of shape (N, {', '.join(map(str, expected))}), "
                         f"found {rows.dtype} {rows.shape}")
    return rows.shape[0]


def _label_columns(values: np.ndarray, task: dict, where: str) -> dict[str, np.ndarray]:
    """label_<name> int8 columns from MedMNIST's labels: class indices, or 0/1 flags for multi-label sets."""
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{where}: labels must be integers, found {values.dtype}")
    flat = values.reshape(len(values), -1)
    labels = task["labels"]
    if task["type"] == "multilabel":
        if flat.shape[1] != len(labels):
            raise ValueError(f"{where}: expected {len(labels)} label columns {labels}, found shape {values.shape}")
        allowed = 2
    else:
        if flat.shape[1] != 1:
            raise ValueError(f"{where}: expected one class index per image, found shape {values.shape}")
        allowed = 2 if task["type"] == "binary" else len(labels)
    bad = np.unique(flat[(flat < 0) | (flat >= allowed)])
    if bad.size:
        raise ValueError(f"{where}: label value(s) {bad[:10].tolist()} outside 0..{allowed - 1}")
    if task["type"] == "multiclass":
        return {label: (flat[:, 0] == j).astype(np.int8) for j, label in enumerate(labels)}
    return {label: flat[:, j].astype(np.int8) for j, label in enumerate(labels)}


def read_items(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    name = npz_file(entry, options)
    path = Path(root) / name
    spec = entry["labels"]
    task = entry["tasks"][spec["task"]]
    size = options.get("size", entry["options"]["size"]["default"])
    parts = []
    with _open(path) as archive:
        for split in SPLITS:
            images_key, labels_key = spec["images_key"].format(split=split), spec["labels_key"].format(split=split)
            n_images = _image_rows(archive, path, images_key, entry, size)
            values = NpyRows(archive, path, labels_key).read_all()
            if len(values) != n_images:
                raise ValueError(f"{path}: '{labels_key}' has {len(values)} rows but '{images_key}' has {n_images}")
            item_ids = [f"{split}_{i:06d}" for i in range(n_images)]
            part = pd.DataFrame({"item_id": item_ids, "patient_id": item_ids, "source_file": name, "split": split})
            for label, column in _label_columns(values, task, f"{path}: array '{labels_key}'").items():
                part[label_column(label)] = column
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _rows(root: Path, items: pd.DataFrame, entry: dict):
    """(index, uint8 row | ImageReadError, where) for the rows of `items` in order; an unreadable row is an
    ImageReadError naming file, array and row."""
    images_key = entry["labels"]["images_key"]
    archives: dict[str, zipfile.ZipFile] = {}
    readers: dict[tuple[str, str], NpyRows] = {}
    try:
        for index, item_id, source_file in zip(items.index, items["item_id"], items["source_file"]):
            split, row = item_id.rsplit("_", 1)
            key = (source_file, images_key.format(split=split))
            where = f"{source_file}: array '{key[1]}'[{int(row)}]"
            try:
                if key not in readers:
                    path = Path(root) / source_file
                    if source_file not in archives:
                        archives[source_file] = _open(path)
                    readers[key] = NpyRows(archives[source_file], path, key[1])
                pixels = readers[key].row(int(row))
            except ImageReadError as err:
                pixels = err
            except NPZ_ERRORS as exc:
                pixels = ImageReadError(where, str(exc))
            yield index, pixels, where
    finally:
        for reader in readers.values():
            reader.close()
        for archive in archives.values():
            archive.close()


def iter_images(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    """(index, Image | ImageReadError) for every row of a 2-D set, in order; pixels are the stored uint8 / 255."""
    for index, pixels, _ in _rows(root, items, entry):
        if isinstance(pixels, ImageReadError):
            yield index, pixels
        else:
            meta = {"rows": pixels.shape[0], "cols": pixels.shape[1]}
            yield index, Image(pixels.astype(np.float32) / np.float32(255.0), meta)


def iter_volumes(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    """(index, Volume | ImageReadError) for every row of a 3-D set, in order, one volume in memory at a time.

    Voxels are the stored uint8 / 255: MedMNIST already mapped each volume's intensities onto 0..255 (CT is not
    in Hounsfield units any more), which is why the entries say "intensity": "normalised".
    """
    for index, voxels, where in _rows(root, items, entry):
        if isinstance(voxels, ImageReadError):
            yield index, voxels
        else:
            yield index, _volume(voxels, where)


def _volume(voxels: np.ndarray, where: str) -> Volume:
    """A (D, H, W) MedMNIST volume on the assumed grid (module docstring) -> canonical RAS+ Volume."""
    _, rows, cols = voxels.shape
    # voxel (d, h, w) -> RAS mm (x, y, z) = (cols - 1 - w, rows - 1 - h, d): the canonical affine is the identity
    affine = np.array([[0, 0, -1, cols - 1], [0, -1, 0, rows - 1], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
    img = nib.Nifti1Image(voxels.astype(np.float32) / np.float32(255.0), affine)
    return canonical_volume(img, where, {"source": where, "source_format": "npz", "geometry": GEOMETRY_NOTE})
