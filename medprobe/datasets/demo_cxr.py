"""Offline demo dataset: synthetic chest radiographs as real DICOM files with planted findings.

The findings are graded in difficulty (a high-contrast device line down to a small faint
nodule), so a probe benchmark on this set separates strong from weak features. The images
vary the way real archives do (photometric, bit depth, rescale, window tags, matrix size,
pixel spacing), so the DICOM reader is exercised end to end. A per-patient CONTROL label,
drawn independently of the pixels, must score at chance. Output is byte-identical for the
same arguments: every UID, date and random draw derives from `seed`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medprobe.atomic import atomic_path

FINDINGS = ("device", "effusion", "opacity", "nodule")
CONTROL = "control"

FINDING_PREVALENCE = {"device": 0.3, "effusion": 0.3, "opacity": 0.3, "nodule": 0.3}
CONTROL_PREVALENCE = 0.4
MULTI_IMAGE_PATIENT_FRACTION = 0.3
MATRIX_SIZES = ((512, 512), (480, 560), (560, 480), (448, 448))
PIXEL_SPACINGS_MM = (0.139, 0.143, 0.168, 0.2)
SOP_CLASSES = {"DX": "1.2.840.10008.5.1.4.1.1.1.1", "CR": "1.2.840.10008.5.1.4.1.1.1"}
RESCALES = ((1.0, 0.0), (0.5, -1024.0), (2.0, 100.0), (0.25, 0.0))
LUNG_CENTERS_X = (-0.37, 0.37)
LUNG_CENTER_Y, LUNG_HALF_WIDTH, LUNG_HALF_HEIGHT = 0.0, 0.29, 0.62
STUDY_DATE_ORIGIN = np.datetime64("2020-01-01")


def generate(out_dir: Path, n_patients: int = 400, seed: int = 0, split_fractions=(0.6, 0.2, 0.2)) -> None:
    """Write images/<image_id>.dcm, labels.csv (NIH ChestX-ray14 style plus Control) and split.csv."""
    out_dir = Path(out_dir)
    if abs(sum(split_fractions) - 1.0) > 1e-9 or len(split_fractions) != 3:
        raise ValueError(f"split_fractions must be three fractions summing to 1, got {split_fractions}")
    rng = np.random.Generator(np.random.PCG64(seed))
    patient_ids = [f"P{index:05d}" for index in range(n_patients)]
    label_rows = []
    for patient_index, patient_id in enumerate(patient_ids):
        control = int(rng.random() < CONTROL_PREVALENCE)
        n_images = int(rng.integers(2, 4)) if rng.random() < MULTI_IMAGE_PATIENT_FRACTION else 1
        study_date = str(STUDY_DATE_ORIGIN + int(rng.integers(0, 1500))).replace("-", "")
        for image_index in range(n_images):
            image_id = f"{patient_index:08d}_{image_index:03d}"
            findings = [name for name in FINDINGS if rng.random() < FINDING_PREVALENCE[name]]
            density = _radiograph(rng, MATRIX_SIZES[rng.integers(len(MATRIX_SIZES))], findings)
            dataset = _dicom_dataset(rng, density, seed, patient_id, image_index, study_date)
            with atomic_path(out_dir / "images" / f"{image_id}.dcm") as tmp:
                dataset.save_as(tmp, enforce_file_format=True)
            label_rows.append([f"{image_id}.dcm", "|".join(findings) or "No Finding", patient_id, control])
    write_csv(out_dir / "labels.csv", ["Image Index", "Finding Labels", "Patient ID", "Control"], label_rows)
    splits = patient_splits(rng, n_patients, split_fractions)
    write_csv(out_dir / "split.csv", ["Patient ID", "split"], list(zip(patient_ids, splits)))


def patient_splits(rng: np.random.Generator, n_patients: int, fractions) -> list[str]:
    order = rng.permutation(n_patients)
    n_train = round(fractions[0] * n_patients)
    n_val = round(fractions[1] * n_patients)
    splits = np.empty(n_patients, dtype=object)
    splits[order[:n_train]] = "train"
    splits[order[n_train : n_train + n_val]] = "val"
    splits[order[n_train + n_val :]] = "test"
    return splits.tolist()


def write_csv(path: Path, header: list[str], rows: list) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())


def _radiograph(rng: np.random.Generator, shape: tuple[int, int], findings: list[str]) -> np.ndarray:
    """Density image in [0, 1] (bright = dense) with thorax anatomy and the requested findings."""
    x, y, density, lungs, _ = thorax(rng, shape)
    for name in findings:
        density += _FINDING_PAINTERS[name](rng, x, y, lungs)
    return expose(rng, x, y, density)


def thorax(rng: np.random.Generator, shape: tuple[int, int]):
    """Anatomy before findings: (x, y) normalised coordinates, density, and the soft lung and heart fields
    (lung-field masks for the segmentation demo come from the last two)."""
    rows, cols = shape
    # Normalised coordinates: y from -1 (apex) to 1 (abdomen), x scaled so circles stay round.
    scale = 2.0 / max(rows, cols)
    y = (np.arange(rows) - rows / 2)[:, None] * scale
    x = (np.arange(cols) - cols / 2)[None, :] * scale
    shift_y, shift_x = rng.normal(0, 0.03, 2)
    zoom = rng.uniform(0.93, 1.05)
    y = (y - shift_y) / zoom
    x = (x - shift_x) / zoom

    body = _soft_ellipse(x, y, 0.0, 0.1, 0.8, 1.05, 0.06)
    density = 0.08 + 0.5 * body
    dome_height = rng.uniform(0.5, 0.6, 2)
    lungs = np.zeros_like(density)
    for side, center_x in enumerate(LUNG_CENTERS_X):
        lung = _soft_ellipse(x, y, center_x, LUNG_CENTER_Y, LUNG_HALF_WIDTH, LUNG_HALF_HEIGHT, 0.05)
        dome = dome_height[side] - 0.22 * (1 - ((x - center_x) / 0.3) ** 2).clip(0, 1)
        lungs += lung * _sigmoid((dome - y) / 0.025)
    density -= 0.3 * lungs
    ribs = np.clip((np.cos(2 * np.pi * (y - 0.9 * (np.abs(x) - 0.05) ** 2) / 0.14) - 0.55) / 0.45, 0, 1)
    density += 0.06 * ribs * lungs
    density += 0.12 * _soft_ellipse(x, y, 0.0, -0.1, 0.1, 0.75, 0.04)  # mediastinum
    heart = _soft_ellipse(x, y, 0.1, 0.15, 0.25, 0.22, 0.06)
    density += 0.1 * heart
    vertebrae = 0.6 + 0.4 * np.cos(2 * np.pi * y / 0.11) ** 2
    density += 0.05 * vertebrae * _soft_ellipse(x, y, 0.0, 0.0, 0.05, 1.1, 0.02)  # spine
    return x, y, density, lungs, heart


def expose(rng: np.random.Generator, x, y, density: np.ndarray) -> np.ndarray:
    """Exposure: a smooth background field, a global gain and quantum noise, clipped to [0, 1]."""
    density += _low_frequency_field(rng, x, y, 0.02)
    density = density * rng.uniform(0.9, 1.1) + rng.normal(0, 0.012, density.shape)
    return density.clip(0, 1)


def _device(rng, x, y, lungs):
    """Thin high-contrast line like a central venous catheter: over the right lung apex, curving
    down to the heart. It crosses dark lung, so its contrast survives heavy downsampling: easy."""
    start_x = rng.uniform(-0.5, -0.3)
    end_x, end_y = rng.uniform(-0.12, 0.0), rng.uniform(0.0, 0.3)
    progress = ((y + 0.95) / (end_y + 0.95)).clip(0, 1)
    path_x = start_x + (end_x - start_x) * np.sqrt(progress)
    along = _sigmoid((end_y - y) / 0.01) * _sigmoid((y + 0.95) / 0.01)
    return 0.5 * np.exp(-(((x - path_x) / 0.012) ** 2)) * along


def _effusion(rng, x, y, lungs):
    """Fluid filling one or both lung bases, its upper edge rising laterally (meniscus)."""
    sides = [0, 1] if rng.random() < 0.35 else [int(rng.integers(2))]
    fill = np.zeros_like(lungs)
    for side in sides:
        center_x = LUNG_CENTERS_X[side]
        base_level = rng.uniform(0.05, 0.2)
        lateral = ((x - center_x) * np.sign(center_x) / LUNG_HALF_WIDTH).clip(0, 1.2)
        level = base_level - 0.25 * lateral**2
        fill += _sigmoid((y - level) / 0.04) * (np.sign(x) == np.sign(center_x))
    return rng.uniform(0.06, 0.12) * fill * lungs


def _opacity(rng, x, y, lungs):
    """One to three soft, fairly large consolidations inside the lung fields."""
    blobs = [
        _blob_in_lung(rng, x, y, rng.uniform(0.09, 0.15), rng.uniform(0.07, 0.11))
        for _ in range(rng.integers(1, 4))
    ]
    return sum(blobs) * lungs


def _nodule(rng, x, y, lungs):
    """A single small round blob: the smallest finding, so the first to vanish when downsampled."""
    return _blob_in_lung(rng, x, y, rng.uniform(0.065, 0.08), rng.uniform(0.17, 0.2)) * lungs


_FINDING_PAINTERS = {"device": _device, "effusion": _effusion, "opacity": _opacity, "nodule": _nodule}


def _blob_in_lung(rng, x, y, radius, amplitude):
    center_x = LUNG_CENTERS_X[rng.integers(2)] + rng.uniform(-0.5, 0.5) * LUNG_HALF_WIDTH
    center_y = LUNG_CENTER_Y + rng.uniform(-0.6, 0.3) * LUNG_HALF_HEIGHT
    return amplitude * np.exp(-((x - center_x) ** 2 + (y - center_y) ** 2) / (2 * radius**2))


def _low_frequency_field(rng, x, y, amplitude):
    field = 0.0
    for _ in range(4):
        freq_x, freq_y = rng.uniform(0.3, 1.5, 2)
        field = field + np.cos(np.pi * (freq_x * x + freq_y * y) + rng.uniform(0, 2 * np.pi))
    return amplitude * field / 2


def _soft_ellipse(x, y, center_x, center_y, half_width, half_height, edge):
    radius = np.sqrt(((x - center_x) / half_width) ** 2 + ((y - center_y) / half_height) ** 2)
    return _sigmoid((1 - radius) / edge)


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


def _dicom_dataset(
    rng: np.random.Generator,
    density: np.ndarray,
    seed: int,
    patient_id: str,
    image_index: int,
    study_date: str,
) -> pydicom.Dataset:
    """Store `density` the way a random archive would, so that modality LUT + VOI + inversion restore it."""
    modality = "DX" if rng.random() < 0.5 else "CR"
    bits_stored = 12 if rng.random() < 0.5 else 16
    monochrome1 = rng.random() < 0.5
    slope, intercept = RESCALES[rng.integers(len(RESCALES))]
    with_window = rng.random() < 0.5
    spacing = PIXEL_SPACINGS_MM[rng.integers(len(PIXEL_SPACINGS_MM))]

    top = 2**bits_stored - 1
    stored = np.round((density * 0.9 + 0.05) * top)
    if monochrome1:
        stored = top - stored
    stored = stored.astype(np.uint16)
    modality_values = stored * slope + intercept

    def uid(kind: str) -> str:
        return generate_uid(entropy_srcs=["medprobe.demo_cxr", str(seed), patient_id, kind])

    sop_class = SOP_CLASSES[modality]
    sop_instance = uid(f"image-{image_index}")
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_instance
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = uid("study")
    ds.SeriesInstanceUID = uid(f"series-{image_index}")
    ds.FrameOfReferenceUID = uid("frame-of-reference")
    ds.PatientID = patient_id
    ds.PatientName = f"Demo^{patient_id}"
    ds.PatientSex = "F" if rng.random() < 0.5 else "M"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = f"{9 + image_index:02d}0000"
    ds.StudyID = "1"
    ds.AccessionNumber = f"A{patient_id[1:]}"
    ds.SeriesNumber = image_index + 1
    ds.InstanceNumber = 1
    ds.Modality = modality
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.Manufacturer = "medprobe synthetic"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.Rows, ds.Columns = density.shape
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [spacing, spacing]
    ds.ImagerPixelSpacing = [spacing, spacing]
    if (slope, intercept) != (1.0, 0.0) or modality == "CR":
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        ds.RescaleType = "US"
    if with_window:
        low, high = np.percentile(modality_values, (1, 99))
        ds.WindowCenter = round(float(low + high) / 2, 1)
        ds.WindowWidth = round(float(high - low), 1)
    ds.PixelData = stored.tobytes()
    return ds
