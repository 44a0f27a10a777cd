import pandas as pd
import pydicom
import pytest

from medprobe.datasets.demo_cxr import CONTROL, FINDINGS, generate
from medprobe.io.dicom import read_dicom_image

N_PATIENTS = 30


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    first = tmp_path_factory.mktemp("demo_cxr_a")
    second = tmp_path_factory.mktemp("demo_cxr_b")
    generate(first, n_patients=N_PATIENTS, seed=3)
    generate(second, n_patients=N_PATIENTS, seed=3)
    return first, second


def all_files(root):
    return sorted(path.relative_to(root) for path in root.rglob("*") if path.is_file())


def test_same_arguments_give_byte_identical_files(generated):
    first, second = generated
    files = all_files(first)
    assert files == all_files(second)
    assert {"labels.csv", "split.csv"} <= {str(path) for path in files}
    assert not [path for path in files if "partial" in path.name]
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative


def test_labels_table_is_nih_style_with_a_control_column(generated):
    root = generated[0]
    labels = pd.read_csv(root / "labels.csv", dtype=str)
    assert list(labels.columns) == ["Image Index", "Finding Labels", "Patient ID", "Control"]
    assert labels["Image Index"].str.fullmatch(r"\d{8}_\d{3}\.dcm").all()
    assert labels["Image Index"].is_unique
    for findings in labels["Finding Labels"]:
        assert findings == "No Finding" or set(findings.split("|")) <= set(FINDINGS)
    assert CONTROL not in "|".join(labels["Finding Labels"])
    assert set(labels["Control"]) == {"0", "1"}
    assert (labels.groupby("Patient ID")["Control"].nunique() == 1).all()
    assert labels["Patient ID"].nunique() == N_PATIENTS
    assert len(labels) >= 1.2 * N_PATIENTS
    assert (labels.groupby("Patient ID").size() > 1).any()
    assert sorted(path.name for path in (root / "images").iterdir()) == sorted(labels["Image Index"])


def test_split_is_patient_level_and_covers_every_patient(generated):
    root = generated[0]
    split = pd.read_csv(root / "split.csv", dtype=str)
    labels = pd.read_csv(root / "labels.csv", dtype=str)
    assert list(split.columns) == ["Patient ID", "split"]
    assert split["Patient ID"].is_unique
    assert set(split["Patient ID"]) == set(labels["Patient ID"])
    counts = split["split"].value_counts()
    assert set(counts.index) == {"train", "val", "test"}
    assert counts["train"] == round(0.6 * N_PATIENTS)


def test_every_image_reads_back_and_archive_variety_is_present(generated):
    root = generated[0]
    metas = []
    for path in sorted((root / "images").glob("*.dcm")):
        image = read_dicom_image(path)
        assert 0.0 <= image.pixels.min() and image.pixels.max() <= 1.0
        metas.append(image.meta)
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID.name.startswith(("Digital X-Ray", "Computed Radiography"))
        assert ds.PatientID and ds.StudyInstanceUID and ds.SeriesInstanceUID
        assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 0
    meta = pd.DataFrame(metas)
    assert set(meta["photometric"]) == {"MONOCHROME1", "MONOCHROME2"}
    assert set(meta["bits_stored"]) == {12, 16}
    assert set(meta["voi_source"]) == {"tags", "percentile"}
    assert meta["rescale_slope"].dropna().ne(1.0).any()
    assert len(set(zip(meta["rows"], meta["cols"]))) >= 2
    assert meta["pixel_spacing"].map(tuple).nunique() >= 2
    assert meta["sop_instance_uid"].is_unique


def test_monochrome1_images_look_like_monochrome2_after_reading(generated):
    # Lungs (dark) sit left and right of the dense mediastinum in every image, whatever the storage.
    root = generated[0]
    for path in sorted((root / "images").glob("*.dcm")):
        pixels = read_dicom_image(path).pixels
        rows, cols = pixels.shape
        band = pixels[int(rows * 0.35) : int(rows * 0.5)]
        lung = band[:, int(cols * 0.25) : int(cols * 0.3)].mean()
        spine = band[:, int(cols * 0.49) : int(cols * 0.51)].mean()
        assert spine > lung + 0.1, path.name


def test_different_seeds_give_different_images(tmp_path):
    generate(tmp_path / "a", n_patients=1, seed=0)
    generate(tmp_path / "b", n_patients=1, seed=1)
    image = "images/00000000_000.dcm"
    assert (tmp_path / "a" / image).read_bytes() != (tmp_path / "b" / image).read_bytes()
