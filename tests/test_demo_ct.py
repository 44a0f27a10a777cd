"""The generated demo volumes (demo_ct) and 2-D lung-field masks (demo_cxr_seg), read back with nibabel,
pydicom and PIL only, so they check the files and not medprobe's own readers."""

import gzip
import hashlib
import io

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image
from scipy import ndimage

from medprobe.datasets import demo_ct, demo_cxr_seg
from medprobe.datasets.demo_ct import HU, LABELS

N_PATIENTS = 12  # one full STORAGE_CYCLE: 7 RAS, 2 LPS, 1 PIR, 2 DICOM
N_IMAGES = 16
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
# Plausible organ volumes (mL) for this miniature anatomy, and how far the median HU of an organ's core may sit
# from the intended mean (per-patient shifts are +-5 HU; the noise averages out).
VOLUME_ML = {"liver": (15, 100), "spleen": (1, 10), "kidneys": (1, 12), "lungs": (5, 45), "spine": (3, 16)}
HU_TOLERANCE = {"liver": 10, "spleen": 10, "kidneys": 10, "lungs": 15, "spine": 15}


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    first, second = tmp_path_factory.mktemp("demo_ct_a"), tmp_path_factory.mktemp("demo_ct_b")
    for root in (first, second):
        demo_ct.generate(root, n_patients=N_PATIENTS, seed=5)
    return first, second


@pytest.fixture(scope="module")
def seg(tmp_path_factory):
    first, second = tmp_path_factory.mktemp("demo_seg_a"), tmp_path_factory.mktemp("demo_seg_b")
    for root in (first, second):
        demo_cxr_seg.generate(root, n_images=N_IMAGES, seed=5)
    return first, second


@pytest.fixture(scope="module")
def cases(ct):
    """Every case as (row, canonical int HU array, canonical label array, voxel volume in mL)."""
    root = ct[0]
    loaded = []
    for row in pd.read_csv(root / "labels.csv").itertuples():
        label_image = nib.load(root / row.label)
        if row.image.endswith(".nii.gz"):
            image = nib.load(root / row.image)
        else:  # the label map shares the series' voxel grid (checked in test_dicom_world_matches_its_label_map)
            image = nib.Nifti1Image(read_series(root / row.image)[0], label_image.affine)
        image, label_image = nib.as_closest_canonical(image), nib.as_closest_canonical(label_image)
        assert np.allclose(image.affine, label_image.affine)
        voxel_ml = float(np.prod(label_image.header.get_zooms())) / 1000
        loaded.append((row, np.asarray(image.dataobj), np.asarray(label_image.dataobj), voxel_ml))
    return loaded


def read_series(folder):
    """(HU array (columns, rows, slices) sorted along the normal, sorted datasets) by hand from the slices."""
    slices = [pydicom.dcmread(path) for path in sorted(folder.glob("*.dcm"))]
    normal = np.cross(*np.reshape(np.array(slices[0].ImageOrientationPatient, dtype=float), (2, 3)))
    slices.sort(key=lambda ds: np.dot(np.array(ds.ImagePositionPatient, dtype=float), normal))
    hu = [ds.pixel_array.T * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices]
    return np.stack(hu, axis=-1).astype(np.int16), slices


def digests(root):
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def test_same_arguments_give_byte_identical_folders(ct, seg):
    for first, second in (ct, seg):
        files = digests(first)
        assert files == digests(second)
        assert {"labels.csv", "split.csv"} <= set(files)
        assert not [name for name in files if "partial" in name]
    gzipped = [path for path in ct[0].rglob("*.nii.gz")]
    assert gzipped and all(path.read_bytes()[4:8] == b"\0\0\0\0" for path in gzipped)  # gzip MTIME 0


def test_tables_and_patient_level_split(ct):
    root = ct[0]
    labels = pd.read_csv(root / "labels.csv", dtype=str)
    split = pd.read_csv(root / "split.csv", dtype=str)
    assert list(labels.columns) == ["case_id", "patient_id", "image", "label", "lesion", "control"]
    assert list(split.columns) == ["patient_id", "split"]
    assert labels["case_id"].is_unique and labels["patient_id"].nunique() == N_PATIENTS
    assert set(labels["lesion"]) == {"0", "1"} and set(labels["control"]) == {"0", "1"}
    dicom = labels[labels["image"].str.startswith("dicom/")]
    assert len(dicom) == N_PATIENTS // 6
    assert all((root / path).is_dir() for path in dicom["image"])
    assert all((root / path).is_file() for path in labels["label"])
    assert all((root / path).is_file() for path in labels["image"] if path.endswith(".nii.gz"))
    assert split["patient_id"].is_unique and set(split["patient_id"]) == set(labels["patient_id"])
    merged = labels.merge(split, on="patient_id")
    assert set(merged["split"]) == {"train", "val", "test"}
    for _, part in merged.groupby("lesion"):  # stratified by lesion, 50/20/30 within each class
        counts = part["split"].value_counts()
        assert counts.get("train", 0) == round(0.5 * len(part)) and counts.get("val", 0) == round(0.2 * len(part))


def test_every_nifti_loads_with_explicit_unit_scaling(ct):
    root = ct[0]
    for row in pd.read_csv(root / "labels.csv").itertuples():
        label = nib.load(root / row.label)
        assert label.get_data_dtype() == np.uint8 and label.ndim == 3
        assert set(np.unique(np.asarray(label.dataobj))) <= set(LABELS.values())
        assert tuple(label.header.get_xyzt_units()) == ("mm", "sec")
        if row.image.endswith(".nii.gz"):
            image = nib.load(root / row.image)
            assert image.get_data_dtype() == np.int16 and image.shape == label.shape
            assert np.array_equal(image.affine, label.affine)
            # nibabel moves scaling from the header to dataobj on load, so read the stored header itself
            stored = nib.Nifti1Header.from_fileobj(io.BytesIO(gzip.decompress((root / row.image).read_bytes())))
            assert (float(stored["scl_slope"]), float(stored["scl_inter"])) == (1.0, 0.0)
            assert (stored["sform_code"], stored["qform_code"]) == (1, 1)
            assert np.asarray(image.dataobj).dtype == np.int16  # unit scaling: raw HU, no float conversion


def test_dicom_series_is_one_consistent_ct_series(ct):
    root = ct[0]
    folders = sorted((root / "dicom").iterdir())
    assert len(folders) == N_PATIENTS // 6
    series_uids = set()
    for folder in folders:
        hu, slices = read_series(folder)
        assert 24 <= len(slices) <= 32
        assert {ds.SOPClassUID for ds in slices} == {pydicom.uid.CTImageStorage}
        assert len({ds.SeriesInstanceUID for ds in slices}) == 1
        assert len({(ds.StudyInstanceUID, ds.PatientID, ds.FrameOfReferenceUID) for ds in slices}) == 1
        assert len({ds.SOPInstanceUID for ds in slices}) == len(slices)
        series_uids.add(slices[0].SeriesInstanceUID)
        assert len({tuple(map(float, ds.ImageOrientationPatient)) for ds in slices}) == 1
        assert len({tuple(map(float, ds.PixelSpacing)) for ds in slices}) == 1
        positions = np.array([ds.ImagePositionPatient for ds in slices], dtype=float)
        steps = np.diff(positions, axis=0)
        assert np.allclose(steps, steps[0], atol=1e-3)
        assert np.linalg.norm(steps[0]) == pytest.approx(float(slices[0].SliceThickness), abs=1e-3)
        # files are numbered head first, so name order is the reverse of position order
        assert [int(ds.InstanceNumber) for ds in slices] == list(range(len(slices), 0, -1))
        for ds in slices:
            assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
            assert (ds.Modality, float(ds.RescaleSlope), float(ds.RescaleIntercept)) == ("CT", 1.0, -1024.0)
            assert ds.pixel_array.dtype == np.uint16 and ds.BitsStored == 12
        assert hu.min() >= -1024 and np.median(hu[:, :, 0]) < -900  # the corners are air
    assert len(series_uids) == len(folders)


def test_dicom_world_matches_its_label_map(ct):
    """The series' geometry (IPP, IOP, PixelSpacing) and the label NIfTI's affine agree voxel for voxel."""
    root = ct[0]
    labels = pd.read_csv(root / "labels.csv")
    for row in labels[labels["image"].str.startswith("dicom/")].itertuples():
        hu, slices = read_series(root / row.image)
        label = nib.load(root / row.label)
        assert label.shape == hu.shape
        iop = np.array(slices[0].ImageOrientationPatient, dtype=float)
        row_spacing, column_spacing = map(float, slices[0].PixelSpacing)
        lps = np.eye(4)
        lps[:3, 0] = iop[:3] * column_spacing
        lps[:3, 1] = iop[3:] * row_spacing
        lps[:3, 2] = np.subtract(slices[1].ImagePositionPatient, slices[0].ImagePositionPatient)
        lps[:3, 3] = slices[0].ImagePositionPatient
        corners = np.array([[i, j, k, 1] for i in (0, hu.shape[0] - 1) for j in (0, hu.shape[1] - 1)
                            for k in (0, hu.shape[2] - 1)]).T
        dicom_ras = RAS_TO_LPS @ (lps @ corners)[:3]
        half_voxel = min(label.header.get_zooms()) / 2
        assert np.abs(dicom_ras - (label.affine @ corners)[:3]).max() < half_voxel
        assert nib.aff2axcodes(label.affine) == ("L", "P", "S")


def test_orientations_vary_across_cases(ct):
    root = ct[0]
    codes = ["".join(nib.aff2axcodes(nib.load(path).affine)) for path in sorted((root / "images").glob("*.nii.gz"))]
    assert codes.count("RAS") > len(codes) / 2
    assert "LPS" in codes
    assert any(code[2] not in "SI" for code in codes)  # a permuted axis order, slices not along axis 2


def test_organs_have_plausible_volumes_and_hounsfield_units(cases):
    for row, hu, labels, voxel_ml in cases:
        assert np.median(hu[labels == 0][:1000]) < -900 and hu.min() >= -1024  # air around the body
        volumes = {}
        for organ, (low, high) in VOLUME_ML.items():
            mask = labels == LABELS[organ]
            volumes[organ] = mask.sum() * voxel_ml
            assert low <= volumes[organ] <= high, (row.case_id, organ, volumes[organ])
            core = ndimage.binary_erosion(mask, np.ones((3, 3, 1)))  # away from partial-volume edges
            assert abs(np.median(hu[core]) - HU[organ]) <= HU_TOLERANCE[organ], (row.case_id, organ)
        assert max(volumes, key=volumes.get) == "liver"
        lungs = np.flatnonzero((labels == LABELS["lungs"]).any(axis=(0, 1)))
        kidneys = np.flatnonzero((labels == LABELS["kidneys"]).any(axis=(0, 1)))
        assert lungs.mean() > kidneys.mean()  # canonical axis 2 runs toward the head
        liver_x = np.argwhere(labels == LABELS["liver"])[:, 0].mean()
        spleen_x = np.argwhere(labels == LABELS["spleen"])[:, 0].mean()
        assert liver_x > spleen_x  # canonical axis 0 runs toward the patient's right, where the liver is


def test_lesion_only_in_positive_cases_and_inside_the_liver(cases):
    for row, hu, labels, voxel_ml in cases:
        lesion = labels == LABELS["lesion"]
        liver = labels == LABELS["liver"]
        smoothed = ndimage.gaussian_filter(hu.astype(float), (1.0, 1.0, 0.0))
        liver_core = ndimage.binary_erosion(liver | lesion, np.ones((5, 5, 3)))
        if not row.lesion:
            assert not lesion.any(), row.case_id
            assert smoothed[liver_core].min() > 15, row.case_id  # no hypodense region in the liver
            continue
        n_lesions = ndimage.label(lesion)[1]
        assert 1 <= n_lesions <= 3, row.case_id
        sphere_ml = 4 / 3 * np.pi / 1000
        assert n_lesions * sphere_ml * 5**3 <= lesion.sum() * voxel_ml <= n_lesions * sphere_ml * 15**3
        rim = ndimage.binary_dilation(lesion, np.ones((3, 3, 3))) & ~lesion
        assert np.all(liver[rim]), row.case_id  # wholly surrounded by liver
        assert np.median(hu[lesion]) < np.median(hu[liver]) - 25  # hypodense


def test_segmentation_set_tables_and_split(seg):
    root = seg[0]
    labels = pd.read_csv(root / "labels.csv", dtype=str)
    split = pd.read_csv(root / "split.csv", dtype=str)
    assert list(labels.columns) == ["image_id", "patient_id", "image", "mask"]
    assert len(labels) == N_IMAGES and labels["image_id"].is_unique
    assert (labels.groupby("patient_id").size() > 1).any()
    assert split["patient_id"].is_unique and set(split["patient_id"]) == set(labels["patient_id"])
    assert set(split["split"]) == {"train", "val", "test"}


def test_lung_masks_align_with_the_drawn_lungs(seg):
    root = seg[0]
    for row in pd.read_csv(root / "labels.csv").itertuples():
        with Image.open(root / row.image) as image, Image.open(root / row.mask) as mask_file:
            assert image.mode == "L" and mask_file.mode == "L" and image.size == mask_file.size == (128, 128)
            pixels, mask = np.asarray(image, dtype=float), np.asarray(mask_file)
        assert set(np.unique(mask)) == {0, 1, 2}
        columns = np.arange(mask.shape[1])[None, :]
        assert (columns * (mask == 1)).sum() / (mask == 1).sum() > mask.shape[1] / 2  # patient's left: image right
        assert (columns * (mask == 2)).sum() / (mask == 2).sum() < mask.shape[1] / 2
        for value in (1, 2):
            lung = mask == value
            assert ndimage.label(lung)[1] == 1
            around = ndimage.binary_dilation(lung, iterations=5) & (mask == 0)
            assert pixels[lung].mean() < pixels[around].mean() - 10, row.image_id  # aerated lung is darker
