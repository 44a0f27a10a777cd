"""CT-RATE (Hugging Face ibrahimhamamci/CT-RATE) as `hf download` lays it out: dataset/<release folder>/
<split>_<patient>/<split>_<patient>_<scan>/<split>_<patient>_<scan>_<reconstruction>.nii.gz, one label table per
official split (VolumeName plus 18 abnormality columns, 0/1) and, per split, a metadata table.

A patient has one or more scans, a scan one or more reconstructions (kernels); every reconstruction is an item and
the patient (<split>_<patient>) is the unit of splitting, so reconstructions of one scan never straddle splits.

Intensities, as the files hold them. The first release's NIfTI headers are blank (Hugging Face discussion #58 of
the dataset): no spacing, origin, direction or scaling, and the voxels are the stored DICOM values, which the
publisher's own loaders (CT-CLIP) rescale with RescaleSlope/RescaleIntercept from dataset/metadata/
<split>_metadata.csv. The volumes were then rewritten into dataset/*_fixed by a fix_metadata script (discussion
#59): HU = RescaleSlope * stored + RescaleIntercept as int16, with spacing (XYSpacing, ZSpacing), origin
(ImagePositionPatient) and direction (ImageOrientationPatient and their cross product) set in LPS (SimpleITK),
which the NIfTI file stores as RAS. So `release: fixed` takes the headers as they are, and `release: original`
rebuilds the same geometry and HU from the metadata row, giving the same volume. Either way a volume whose lowest
voxel is above -500 is refused: a chest CT always holds air near -1000 HU, so such values are not Hounsfield units.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.orientations import aff2axcodes

from medprobe.datasets.adapters import LayoutError, label_column, require_files
from medprobe.io.images import ImageReadError
from medprobe.io.volumes import Volume, VolumeReadError, read_nifti

NAME = re.compile(r"(train|valid)_(\d+)_([a-z]+)_(\d+)(?:\.nii\.gz)?")
METADATA_FIELDS = ("RescaleSlope", "RescaleIntercept", "XYSpacing", "ZSpacing", "ImagePositionPatient",
                   "ImageOrientationPatient")
AIR_CEILING_HU = -500.0
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _release(entry: dict, options: dict) -> str:
    release = options.get("release", entry["options"]["release"]["default"])
    choices = entry["options"]["release"]["choices"]
    if release not in choices:
        raise ValueError(f"CT-RATE option release={release!r} is not one of {choices}")
    return release


def _max_volumes(options: dict) -> int | None:
    cap = options.get("max_volumes")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise ValueError(f"CT-RATE option max_volumes={cap!r} must be a positive integer or null")
    return cap


def read_items(root: Path, entry: dict, options: dict) -> pd.DataFrame:
    release, cap = _release(entry, options), _max_volumes(options)
    labels = entry["tasks"]["abnormalities"]["labels"]
    parts = []
    for official, spec in entry["labels"]["splits"].items():
        items = _read_table(root / spec["table"], official, spec, spec["volumes"][release], labels)
        items = items.iloc[:cap].reset_index(drop=True) if cap else items
        if release == "original":
            items = _with_metadata(items, root, spec["metadata"])
        else:
            items["hu_from"] = "nifti"
        parts.append(items)
    return pd.concat(parts, ignore_index=True)


def _read_table(path: Path, official: str, spec: dict, volume_dir: str, labels: list[str]) -> pd.DataFrame:
    """One official split's label table as items in name order (patient, scan, reconstruction numerically)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("VolumeName", *labels) if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")
    names = table["VolumeName"].str.strip()
    parsed = [NAME.fullmatch(name) for name in names]
    bad = [line for line, match in zip(table.index + 2, parsed) if not match or match.group(1) != official]
    if bad:
        raise ValueError(f"{path}: VolumeName on line(s) {bad[:5]} is not {official}_<patient>_<scan>_"
                         f"<reconstruction>.nii.gz, e.g. {names[bad[0] - 2]!r}")
    stems = names.str.removesuffix(".nii.gz")
    dupes = sorted(set(stems[stems.duplicated()]))
    if dupes:
        raise ValueError(f"{path}: volume(s) listed twice, e.g. {dupes[:5]}")
    items = pd.DataFrame({
        "item_id": stems.to_numpy(),
        "patient_id": [f"{official}_{m.group(2)}" for m in parsed],
        "source_file": [f"{volume_dir}/{official}_{m.group(2)}/{official}_{m.group(2)}_{m.group(3)}/{stem}.nii.gz"
                        for m, stem in zip(parsed, stems)],
        "split": spec["split"],
    })
    for label in labels:
        column = table[label].str.strip()
        wrong = column.index[~column.isin(["0", "1"])]
        if len(wrong):
            raise ValueError(f"{path}: column '{label}' holds {sorted(set(column[wrong]))[:5]} on line(s) "
                             f"{(wrong + 2).tolist()[:5]}; expected 0 or 1")
        items[label_column(label)] = column.astype("int8").to_numpy()
    order = sorted(range(len(parsed)), key=lambda i: (int(parsed[i].group(2)), parsed[i].group(3),
                                                      int(parsed[i].group(4))))
    return items.iloc[order].reset_index(drop=True)


def _with_metadata(items: pd.DataFrame, root: Path, metadata_file: str) -> pd.DataFrame:
    """The first release: each volume's metadata row (kept verbatim, parsed when the volume is read)."""
    path = root / metadata_file
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("VolumeName", *METADATA_FIELDS) if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")
    table.index = table["VolumeName"].str.strip().str.removesuffix(".nii.gz")
    table = table[~table.index.duplicated()]
    absent = [item for item in items["item_id"] if item not in table.index]
    if absent:
        raise ValueError(f"{path}: no row for {len(absent)} volume(s) of the label table, e.g. {absent[:5]}")
    rows = table.loc[items["item_id"], list(METADATA_FIELDS)]
    return items.assign(hu_from="metadata", metadata_file=metadata_file,
                        metadata_row=[json.dumps(row, sort_keys=True) for row in rows.to_dict("records")])


def iter_volumes(root: Path, items: pd.DataFrame, entry: dict, settings: dict):
    """(index, canonical HU Volume | ImageReadError) for every row, in order."""
    for index, row in items.iterrows():
        path = root / row["source_file"]
        try:
            volume = read_nifti(path)
            if row["hu_from"] == "metadata":
                volume = _from_metadata(volume, path, json.loads(row["metadata_row"]), row["metadata_file"])
            yield index, _checked(volume, path, row["hu_from"])
        except ImageReadError as err:
            yield index, err


def _metadata_geometry(fields: dict, path: Path, metadata_file: str) -> tuple[np.ndarray, float, float]:
    """(RAS affine of the file's voxel grid, slope, intercept) from a metadata row, exactly as the publisher's
    fix script sets them: spacing (XYSpacing..., ZSpacing), LPS origin and direction, then LPS -> RAS."""
    def number(key: str) -> float:
        return _numbers(fields, key, 1, path, metadata_file)[0]

    slope, intercept, z = number("RescaleSlope"), number("RescaleIntercept"), number("ZSpacing")
    x, y = _numbers(fields, "XYSpacing", 2, path, metadata_file)
    origin = _numbers(fields, "ImagePositionPatient", 3, path, metadata_file)
    orientation = _numbers(fields, "ImageOrientationPatient", 6, path, metadata_file)
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    lps = np.eye(4)
    lps[:3, :3] = np.column_stack([row, col, np.cross(row, col)]) * np.array([x, y, z])
    lps[:3, 3] = origin
    if min(x, y, z) <= 0 or abs(np.linalg.det(lps[:3, :3])) < 1e-9:
        raise VolumeReadError(path, f"{metadata_file} gives a degenerate geometry (spacing {[x, y, z]}, "
                                    f"orientation {orientation})")
    return LPS_TO_RAS @ lps, slope, intercept


def _numbers(fields: dict, key: str, count: int, path: Path, metadata_file: str) -> list[float]:
    text = fields[key].strip()
    try:
        value = json.loads(text)
        values = [float(v) for v in (value if isinstance(value, list) else [value])]
    except (ValueError, TypeError):
        values = []
    if len(values) != count or not np.all(np.isfinite(values)):
        raise VolumeReadError(path, f"{metadata_file} gives {key} {text!r}; expected {count} finite number(s)")
    return values


def _from_metadata(volume: Volume, path: Path, fields: dict, metadata_file: str) -> Volume:
    """A blank-header volume placed and rescaled by its metadata row.

    read_nifti put the voxels in the canonical order of the blank header's affine; mapping those voxels back to the
    file's grid and on through the metadata affine gives the true world position of every voxel, whose canonical
    form is then taken again.
    """
    affine, slope, intercept = _metadata_geometry(fields, path, metadata_file)
    to_file = np.rint(np.linalg.inv(np.asarray(volume.meta["original_affine"])) @ volume.affine)
    hu = volume.data * np.float32(slope) + np.float32(intercept)
    canonical = nib.as_closest_canonical(nib.Nifti1Image(hu, affine @ to_file))
    meta = {**volume.meta, "original_affine": affine.tolist(), "original_axcodes": list(aff2axcodes(affine)),
            "hu_rescale": {"slope": slope, "intercept": intercept, "from": metadata_file}}
    return Volume(np.ascontiguousarray(np.asanyarray(canonical.dataobj), dtype=np.float32), canonical.affine,
                  tuple(float(z) for z in canonical.header.get_zooms()[:3]), meta)


def _checked(volume: Volume, path: Path, hu_from: str) -> Volume:
    if not all(np.isfinite(s) and s > 0 for s in volume.spacing):
        raise VolumeReadError(path, f"voxel spacing {volume.spacing} is not positive and finite")
    lowest = float(volume.data.min())
    if lowest > AIR_CEILING_HU:
        hint = ("stored values of the first release? read it with the dataset option release: original"
                if hu_from == "nifti" else "the metadata rescale does not give Hounsfield units")
        raise VolumeReadError(path, f"lowest voxel is {lowest:g}, but a chest CT holds air near -1000 HU: these "
                                    f"are not Hounsfield units ({hint})")
    return volume


def check_layout(root: Path, entry: dict, options: dict) -> None:
    """The tables and volume folders of the chosen release, then every volume that read_items selects."""
    release, layout = _release(entry, options), entry["source"]["layout"]
    splits = entry["labels"]["splits"].values()
    required = [*(s["table"] for s in splits), *(s["volumes"][release] for s in splits)]
    if release == "original":
        required += [s["metadata"] for s in splits]
    try:
        require_files(root, required, layout)
    except LayoutError as err:
        raise LayoutError(f"{err}{_hint(root, splits, release)}") from None
    items = read_items(root, entry, options)
    missing = [path for path in items["source_file"] if not (root / path).is_file()]
    if missing:
        raise LayoutError(f"{root}: {len(missing)} of the {len(items)} volumes listed in the label tables are "
                          f"missing, e.g. {missing[:5]}. Download them, or read fewer with the dataset option "
                          f"max_volumes. Expected layout:\n{layout}")


def _hint(root: Path, splits, release: str) -> str:
    if (root / "multi_abnormality_labels").is_dir():
        return "\n`path` points inside dataset/: set it to the folder that holds dataset/"
    other = "original" if release == "fixed" else "fixed"
    if all((root / s["volumes"][other]).is_dir() for s in splits):
        return f"\nfound the volume folders of the other release ({[s['volumes'][other] for s in splits]}): " \
               f"set the dataset option release: {other}"
    return ""
