"""Offline demo volumes: small CT-like scans of the upper abdomen with organ label maps and a planted lesion.

Each patient has one int16 HU volume (air, body wall with skin and subcutaneous fat, lungs, liver, spleen,
kidneys, spine, noise and partial-volume blur) with anisotropic spacing that varies between patients. About
half carry a hypodense liver lesion, the volume-level label; a CONTROL label is drawn independently of the
pixels and must score at chance. The files vary the way real archives do: most NIfTI volumes are stored RAS,
some LPS, some with permuted axes (PIR), and about one case in six is a DICOM CT series, so canonicalisation and
series ingestion are exercised end to end. Output is byte-identical for the same arguments: every draw, UID and
date derives from `seed`, and .nii.gz files carry gzip mtime 0 and no file name.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from nibabel.orientations import axcodes2ornt, ornt_transform
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

from medprobe.atomic import atomic_path
from medprobe.datasets.demo_cxr import patient_splits, write_csv

LESION = "lesion"
CONTROL = "control"
# Label map values. The lesion overrides the liver: a lesion voxel is 6, never 1.
LABELS = {"background": 0, "liver": 1, "spleen": 2, "kidneys": 3, "lungs": 4, "spine": 5, "lesion": 6}

LESION_PREVALENCE = 0.5
CONTROL_PREVALENCE = 0.4
IN_PLANE_VOXELS = 64
SLICES = (24, 32)  # inclusive
IN_PLANE_SPACING_MM = (1.4, 1.8)
SLICE_SPACING_MM = (2.5, 3.5)
# One to three hypodense liver lesions per positive case, as metastases often are: enough lesion volume for the
# mean over a volume's slices to carry the signal a 3-D classification probe is meant to find.
LESIONS_PER_CASE = (1, 3)  # inclusive
LESION_RADIUS_MM = (9.0, 14.0)
LESION_HU = (-10.0, 5.0)
MIN_LESION_RADIUS_MM = 6.0  # a second or third lesion is planted only where one this large still fits
SPLIT_FRACTIONS = (0.5, 0.2, 0.3)  # a larger test split: 3-D classification CIs are wide on few volumes
# How each case is stored, by case index: mostly RAS NIfTI, some LPS, one permuted (sagittal-like PIR), and one
# in six a DICOM series. The DICOM case's label map is a NIfTI on the series' own voxel grid, which is LPS.
STORAGE_CYCLE = ("RAS", "RAS", "LPS", "RAS", "PIR", "dicom", "RAS", "RAS", "LPS", "RAS", "RAS", "dicom")

# Mean HU per tissue; each patient shifts the organ values by up to +-5 HU.
HU = {"air": -1000.0, "skin": 40.0, "fat": -100.0, "soft_tissue": 30.0, "lungs": -850.0, "liver": 60.0,
      "spleen": 50.0, "kidneys": 30.0, "spine": 700.0}
# Organs as ellipsoids (center, semi-axes) in body coordinates: u toward the patient's right and v anterior, both
# in units of the body's half-width and half-depth; w superior in units of the scan's half-length. Painted in this
# order, a later organ overriding an earlier one; all are confined inside the subcutaneous fat.
ORGANS = {
    "lungs": [((-0.42, -0.05, 1.0), (0.32, 0.5, 0.65)), ((0.42, -0.05, 1.0), (0.32, 0.5, 0.65))],
    "liver": [((0.33, 0.05, 0.05), (0.52, 0.62, 0.7)), ((-0.05, 0.32, 0.15), (0.35, 0.25, 0.4))],
    "spleen": [((-0.55, -0.25, 0.2), (0.2, 0.3, 0.35))],
    "kidneys": [((0.42, -0.32, -0.5), (0.16, 0.2, 0.33)), ((-0.42, -0.32, -0.42), (0.16, 0.2, 0.33))],
    "spine": [((0.0, -0.38, 0.0), (0.14, 0.17, 9.0)), ((0.0, -0.6, 0.0), (0.05, 0.1, 9.0))],
}
# Organs wrapped in unlabelled fat where they border soft tissue, as the kidneys are: the layer's semi-axes relative
# to the organ's.
FAT_CAPSULES = {"kidneys": 1.3}
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
STUDY_DATE_ORIGIN = np.datetime64("2021-01-01")


def generate(out_dir: Path, n_patients: int = 60, seed: int = 0, split_fractions=SPLIT_FRACTIONS) -> None:
    """Write images/<case>.nii.gz or dicom/<case>/NNN.dcm, labels/<case>.nii.gz, labels.csv and split.csv.

    labels.csv: case_id, patient_id, image (a .nii.gz file or a DICOM folder, relative to out_dir), label,
    lesion (0/1), control (0/1). split.csv: patient_id, split (patient-level, stratified by lesion).
    """
    out_dir = Path(out_dir)
    if abs(sum(split_fractions) - 1.0) > 1e-9 or len(split_fractions) != 3:
        raise ValueError(f"split_fractions must be three fractions summing to 1, got {split_fractions}")
    rng = np.random.Generator(np.random.PCG64(seed))
    patient_ids = [f"P{index:05d}" for index in range(n_patients)]
    rows, lesions = [], []
    for index, patient_id in enumerate(patient_ids):
        case_id = f"ct_{index:04d}"
        lesion = int(rng.random() < LESION_PREVALENCE)
        control = int(rng.random() < CONTROL_PREVALENCE)
        hu, labels, affine = _scan(rng, lesion)
        storage = STORAGE_CYCLE[index % len(STORAGE_CYCLE)]
        label_path = f"labels/{case_id}.nii.gz"
        axcodes = "LPS" if storage == "dicom" else storage
        (hu, _), (labels, affine) = _reoriented(hu, affine, axcodes), _reoriented(labels, affine, axcodes)
        if storage == "dicom":
            image_path = f"dicom/{case_id}"
            study_date = str(STUDY_DATE_ORIGIN + int(rng.integers(0, 1000))).replace("-", "")
            _write_series(out_dir / image_path, hu, affine, seed, patient_id, study_date)
        else:
            image_path = f"images/{case_id}.nii.gz"
            _write_nifti(out_dir / image_path, hu, affine)
        _write_nifti(out_dir / label_path, labels, affine)
        rows.append([case_id, patient_id, image_path, label_path, lesion, control])
        lesions.append(lesion)
    write_csv(out_dir / "labels.csv", ["case_id", "patient_id", "image", "label", LESION, CONTROL], rows)
    splits = np.empty(n_patients, dtype=object)
    for value in (0, 1):  # stratified, so every split holds both lesion classes when there are enough patients
        members = np.flatnonzero(np.array(lesions) == value)
        splits[members] = patient_splits(rng, len(members), split_fractions)
    write_csv(out_dir / "split.csv", ["patient_id", "split"], list(zip(patient_ids, splits.tolist())))


def _scan(rng: np.random.Generator, lesion: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(int16 HU, uint8 label map, RAS affine) on a RAS grid: axis 0 toward the right, 1 anterior, 2 superior."""
    n_slices = int(rng.integers(SLICES[0], SLICES[1] + 1))
    shape = (IN_PLANE_VOXELS, IN_PLANE_VOXELS, n_slices)
    in_plane = round(float(rng.uniform(*IN_PLANE_SPACING_MM)), 3)
    spacing = np.array([in_plane, in_plane, round(float(rng.uniform(*SLICE_SPACING_MM)), 3)])
    origin = np.round(-spacing * (np.array(shape) - 1) / 2 + rng.normal(0, 20, 3), 2)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin

    # Millimetres from the body centre (off the field-of-view centre by a few mm), then body coordinates.
    body_center = rng.normal(0, 2.5, 2)
    half_width, half_depth = rng.uniform(36, 42), rng.uniform(27, 32)
    x_mm = (np.arange(shape[0]) - (shape[0] - 1) / 2) * spacing[0] - body_center[0]
    y_mm = (np.arange(shape[1]) - (shape[1] - 1) / 2) * spacing[1] - body_center[1]
    u = (x_mm / half_width)[:, None, None]
    v = (y_mm / half_depth)[None, :, None]
    w = ((np.arange(shape[2]) - (shape[2] - 1) / 2) / ((shape[2] - 1) / 2))[None, None, :]

    body = np.broadcast_to(u**2 + v**2 <= 1, shape)
    depth = np.broadcast_to(ndimage.distance_transform_edt(body[:, :, 0], sampling=spacing[:2])[:, :, None], shape)
    skin, fat = rng.uniform(1.2, 2.0), rng.uniform(3.0, 8.0)
    inside = depth > skin + fat
    hu = np.full(shape, HU["air"])
    hu[body] = HU["skin"]
    hu[body & (depth > skin)] = HU["fat"] + rng.normal(0, 5)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, shape), sigma=(3, 3, 1.5))
    hu[inside] = HU["soft_tissue"] + (12 / texture.std() * texture)[inside]

    labels = np.zeros(shape, dtype=np.uint8)
    for organ, parts in ORGANS.items():
        scale = rng.uniform(0.88, 1.12)
        ellipsoids = [(np.array(center) + rng.normal(0, 0.03, 3), np.array(axes) * scale * rng.uniform(0.95, 1.05, 3))
                      for center, axes in parts]
        if organ in FAT_CAPSULES:
            capsule = _ellipsoids(u, v, w, [(c, s * FAT_CAPSULES[organ]) for c, s in ellipsoids]) & inside
            capsule &= labels == LABELS["background"]  # fat between organs, never inside one
            hu[capsule] = HU["fat"] + rng.normal(0, 5)
        mask = _ellipsoids(u, v, w, ellipsoids) & inside
        labels[mask] = LABELS[organ]
        hu[mask] = HU[organ] + rng.uniform(-5, 5)
    if lesion:
        for _ in range(int(rng.integers(LESIONS_PER_CASE[0], LESIONS_PER_CASE[1] + 1))):
            if not _plant_lesion(rng, hu, labels, spacing):
                break

    hu = ndimage.gaussian_filter(hu, sigma=(0.6, 0.6, 0.4))  # partial-volume blur at organ edges
    noise = ndimage.gaussian_filter(rng.normal(0, 1, shape), sigma=0.5)
    hu += rng.uniform(10, 20) / noise.std() * noise
    return np.round(hu).clip(-1024, 3071).astype(np.int16), labels, affine


def _ellipsoids(u, v, w, ellipsoids) -> np.ndarray:
    """Union of the ellipsoids (center, semi-axes), each given in body coordinates."""
    return np.logical_or.reduce([((u - c[0]) / s[0]) ** 2 + ((v - c[1]) / s[1]) ** 2 + ((w - c[2]) / s[2]) ** 2 <= 1
                                 for c, s in ellipsoids])


def _plant_lesion(rng: np.random.Generator, hu: np.ndarray, labels: np.ndarray, spacing: np.ndarray) -> bool:
    """A hypodense sphere wholly inside the liver: its centre lies deeper in the liver than its radius, so it never
    touches the liver's edge nor a lesion planted before it. False (nothing planted) when the liver left no room
    for a lesion of at least MIN_LESION_RADIUS_MM."""
    depth = ndimage.distance_transform_edt(labels == LABELS["liver"], sampling=spacing)
    margin = float(np.linalg.norm(spacing))  # a voxel diagonal: liver on every side, even diagonally
    room = depth.max() - margin
    if room < MIN_LESION_RADIUS_MM:
        return False
    radius = min(rng.uniform(*LESION_RADIUS_MM), room)
    candidates = np.argwhere(depth >= radius + margin - 1e-9)  # the deepest voxel always qualifies
    center = candidates[rng.integers(len(candidates))]
    grid = np.ogrid[tuple(slice(0, n) for n in hu.shape)]
    sphere = sum(((axis - c) * d) ** 2 for axis, c, d in zip(grid, center, spacing)) <= radius**2
    labels[sphere] = LABELS["lesion"]
    hu[sphere] = rng.uniform(*LESION_HU)
    return True


def _reoriented(data: np.ndarray, affine: np.ndarray, axcodes: str) -> tuple[np.ndarray, np.ndarray]:
    """The same voxels stored along the axes `axcodes` (nibabel codes, e.g. "LPS"), with the matching affine."""
    image = nib.Nifti1Image(data, affine).as_reoriented(ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(axcodes)))
    return np.ascontiguousarray(image.dataobj), image.affine


def _write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """NIfTI-1 in mm with sform = qform = `affine` (scanner) and an explicit scl_slope 1 / scl_inter 0."""
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_sform(affine, code="scanner")
    image.set_qform(affine, code="scanner")
    raw = image.to_bytes()
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw))
    header["scl_slope"], header["scl_inter"] = 1.0, 0.0  # nibabel writes NaN ("no scaling") for integer data
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(header.binaryblock + raw[len(header.binaryblock):], mtime=0))


def _write_series(folder: Path, hu: np.ndarray, affine: np.ndarray, seed: int, patient_id: str, study_date: str):
    """One CT Image Storage file per axial slice; voxel (i, j, k) of `hu` is column i, row j of slice k.

    Instance 1 is the most superior slice (head-first scan order), so file-name order is descending z and a
    reader must sort by ImagePositionPatient. Stored values are HU + 1024 in 12 of 16 bits.
    """
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    row_direction, column_direction = (ras_to_lps @ affine[:3, axis] / spacing[axis] for axis in (0, 1))

    def uid(kind: str) -> str:
        return generate_uid(entropy_srcs=["medprobe.demo_ct", str(seed), patient_id, kind])

    n_slices = hu.shape[2]
    for k in range(n_slices):
        instance = n_slices - k
        position = ras_to_lps @ (affine @ [0.0, 0.0, k, 1.0])[:3]
        sop_instance = uid(f"slice-{k}")
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        ds.file_meta.MediaStorageSOPInstanceUID = sop_instance
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop_instance
        ds.StudyInstanceUID = uid("study")
        ds.SeriesInstanceUID = uid("series")
        ds.FrameOfReferenceUID = uid("frame-of-reference")
        ds.PatientID = patient_id
        ds.PatientName = f"Demo^{patient_id}"
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study_date
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = "100000"
        ds.StudyID = "1"
        ds.AccessionNumber = f"A{patient_id[1:]}"
        ds.Modality = "CT"
        ds.Manufacturer = "medprobe synthetic"
        ds.BodyPartExamined = "ABDOMEN"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientPosition = "HFS"
        ds.KVP = 120
        ds.SeriesNumber = 1
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = instance
        ds.ImagePositionPatient = [round(float(value), 4) for value in position]
        ds.ImageOrientationPatient = [round(float(value), 6) for value in (*row_direction, *column_direction)]
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = round(float(position[2]), 4)
        ds.SliceThickness = ds.SpacingBetweenSlices = round(float(spacing[2]), 4)
        ds.PixelSpacing = [round(float(spacing[1]), 4), round(float(spacing[0]), 4)]  # row, then column spacing
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[0]
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = (hu[:, :, k].T.astype(np.int32) + 1024).astype(np.uint16).tobytes()
        with atomic_path(folder / f"{instance:03d}.dcm") as tmp:
            ds.save_as(tmp, enforce_file_format=True)
