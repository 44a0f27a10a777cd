"""Validation of a user's own dataset table, on real files of every modality written into tmp_path."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom.data
import pytest
from PIL import Image

from medprobe.datasets.validate import TableValidationError, validate_table
from medprobe.io.slide_writer import write_pyramidal_tiff

MULTICLASS = {"type": "multiclass", "classes": ["cat", "dog"]}
COLUMNS = {"path": "file", "patient": "patient", "label": "label", "split": "split"}


def png(path, rows=32, cols=40):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((rows, cols), 128, np.uint8)).save(path)


def nifti(path, shape=(8, 9, 10)):
    nib.save(nib.Nifti1Image(np.zeros(shape, np.uint8), np.eye(4)), path)


@pytest.fixture
def root(tmp_path):
    """One file per modality: PNGs, a DICOM, a NIfTI, a pyramidal TIFF slide and a plain (raster) TIFF."""
    for name in ("a", "b", "c", "d"):
        png(tmp_path / "img" / f"{name}.png")
    shutil.copy(pydicom.data.get_testdata_file("CT_small.dcm"), tmp_path / "img" / "ct.dcm")
    nifti(tmp_path / "img" / "vol.nii.gz")
    write_pyramidal_tiff(tmp_path / "img" / "slide.tif", np.zeros((512, 512, 3), np.uint8), mpp=0.5, n_levels=2)
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "img" / "plain.tif")
    return tmp_path


def clean_table():
    return pd.DataFrame({
        "file": ["img/a.png", "img/ct.dcm", "img/vol.nii.gz", "img/slide.tif", "img/plain.tif", "img/b.png"],
        "patient": ["p1", "p1", "p2", "p2", "p3", "p4"],
        "label": ["cat", "dog", "cat", "dog", "cat", "dog"],
        "split": ["train", "train", "val", "val", "test", "test"],
    })


def messages(report):
    return [str(p) for p in report.problems]


def test_clean_table_has_no_problems_and_a_full_summary(root):
    report = validate_table(root, clean_table(), "labels.csv", COLUMNS, MULTICLASS)
    assert report.problems == []
    assert report.raise_if_problems("fail") == 0
    assert len(report.items) == 6
    assert list(report.items["modality"]) == ["png", "dicom", "nifti", "slide", "tiff", "png"]
    s = report.summary
    assert (s["n_rows"], s["n_ok"]) == (6, 6)
    assert s["splits"] == {"train": 2, "val": 2, "test": 2}
    assert s["classes"] == {split: {"cat": 1, "dog": 1} for split in ("train", "val", "test")}
    assert s["modalities"] == {"dicom": 1, "nifti": 1, "png": 2, "slide": 1, "tiff": 1}
    assert s["dimensionality"] == ["2d", "3d", "wsi"]
    assert s["sizes"]["png"] == {"min": [32, 40], "max": [32, 40]}
    assert s["sizes"]["dicom"] == {"min": [128, 128], "max": [128, 128]}
    assert s["sizes"]["nifti"] == {"min": [8, 9, 10], "max": [8, 9, 10]}
    assert s["sizes"]["slide"] == {"min": [512, 512], "max": [512, 512]}
    text = report.format()
    assert "train: 2 item(s) (cat: 1, dog: 1)" in text
    assert "sizes (nifti): 8x9x10" in text and "no problems" in text


def test_every_row_level_failure_is_reported_at_once_naming_row_and_file(root):
    table = pd.DataFrame({
        "file": ["img/a.png", "img/gone.png", "img/b.png", "img/c.png", "img/d.png", "img/ct.dcm", "img/vol.nii.gz"],
        "id": ["a", "gone", "b", "b", "d", "ct", "vol"],
        "patient": ["p1", "p2", "p3", "p4", "p1", "p5", ""],
        "label": ["cat", "dog", "cat", "dog", "bird", "", "dog"],
        "split": ["train", "train", "val", "val", "test", "holdout", "test"],
    })
    report = validate_table(root, table, "labels.csv", {**COLUMNS, "id": "id"}, MULTICLASS)
    got = messages(report)
    expected = [
        "labels.csv row 3 (item gone, img/gone.png): missing file",
        "labels.csv row 6 (item d, img/d.png): label(s) ['bird'] not in the declared classes ['cat', 'dog']",
        "labels.csv row 7 (item ct, img/ct.dcm): missing label",
        "labels.csv row 8 (item vol, img/vol.nii.gz): missing patient id",
        "labels.csv row 4 (item b, img/b.png): duplicate item id 'b' (also row(s) 5)",
        "labels.csv row 5 (item b, img/c.png): duplicate item id 'b' (also row(s) 4)",
        "labels.csv row 7 (item ct, img/ct.dcm): split 'holdout' is not one of train, val, test",
        "labels.csv row 2 (item a, img/a.png): patient 'p1' is in more than one split "
        "(test: row(s) 6; train: row(s) 2)",
        "labels.csv row 6 (item d, img/d.png): patient 'p1' is in more than one split "
        "(test: row(s) 6; train: row(s) 2)",
    ]
    assert got[:len(expected)] == expected
    assert {p.check for p in report.problems[len(expected):]} == {"empty_class"}  # the skips empty classes too
    with pytest.raises(TableValidationError) as raised:
        report.raise_if_problems("fail")
    assert all(line in str(raised.value) for line in expected)


def test_skip_policy_drops_exactly_the_bad_rows_and_counts_them(root):
    table = clean_table()
    extra = pd.DataFrame({"file": ["img/gone.png", "img/c.png"], "patient": ["p9", "p10"],
                          "label": ["cat", "fish"], "split": ["train", "test"]})
    report = validate_table(root, pd.concat([table, extra], ignore_index=True), "t.csv", COLUMNS, MULTICLASS)
    assert report.bad_rows == [8, 9]
    assert report.raise_if_problems("skip") == 2
    assert list(report.items.index) == list(range(6))
    assert report.summary["n_ok"] == 6 and report.summary["n_rows"] == 8
    with pytest.raises(TableValidationError, match="2 problem"):
        report.raise_if_problems("fail")


def test_dataset_level_problems_are_fatal_under_skip(root):
    table = clean_table()
    table.loc[5, "label"] = "cat"  # the test split is left without a dog
    table.loc[0, "file"] = "img/gone.png"  # and the train split loses its cat once the bad row is skipped
    report = validate_table(root, table, "t.csv", COLUMNS, MULTICLASS)
    assert messages(report)[-2:] == ["t.csv: class 'cat' has no item in split 'train'",
                                     "t.csv: class 'dog' has no item in split 'test'"]
    with pytest.raises(TableValidationError, match="row 2 .*missing file"):
        report.raise_if_problems("skip")

    table = clean_table()
    table.loc[4:5, "file"] = "img/gone.png"  # every test row skipped: both classes are missing from test
    report = validate_table(root, table, "t.csv", COLUMNS, MULTICLASS)
    assert report.summary["splits"]["test"] == 0
    assert [p.message for p in report.problems if p.dataset_level] == [
        "class 'cat' has no item in split 'test'", "class 'dog' has no item in split 'test'"]


def test_missing_columns_one_problem_each_and_fatal(root):
    table = clean_table().drop(columns=["label", "split"])
    report = validate_table(root, table, "t.csv", COLUMNS, MULTICLASS)
    assert [p.check for p in report.problems] == ["missing_column", "missing_column"]
    assert "missing column 'label'" in str(report.problems[0]) and "'split'" in str(report.problems[1])
    assert report.items.empty
    with pytest.raises(TableValidationError):
        report.raise_if_problems("skip")


def test_multilabel_with_separator_and_with_0_1_columns(root):
    table = pd.DataFrame({"file": ["img/a.png", "img/b.png", "img/c.png"], "patient": ["p1", "p2", "p3"],
                          "findings": ["effusion|nodule", "nodule", "effusion| tumour"]})
    task = {"type": "multilabel", "classes": ["effusion", "nodule"], "separator": "|"}
    report = validate_table(root, table, "t.csv", {"path": "file", "patient": "patient", "label": "findings"}, task)
    assert messages(report) == ["t.csv row 4 (img/c.png): label(s) ['tumour'] not in the declared classes "
                                "['effusion', 'nodule']"]
    assert report.summary["classes"] == {"all": {"effusion": 1, "nodule": 2}}

    table = pd.DataFrame({"file": ["img/a.png", "img/b.png"], "patient": ["p1", "p2"],
                          "effusion": [1, 0], "nodule": [0, 2]})
    columns = {"path": "file", "patient": "patient", "labels": ["effusion", "nodule"]}
    report = validate_table(root, table, "t.csv", columns, {"type": "multilabel"})
    assert messages(report) == ["t.csv row 3 (img/b.png): label column 'nodule' holds '2'; expected 0 or 1"]


def test_masks_must_exist_be_readable_and_match_the_image_shape(root):
    png(root / "mask" / "a.png")
    png(root / "mask" / "b.png", rows=16)
    nifti(root / "mask" / "vol.nii.gz", shape=(8, 9, 11))
    nifti(root / "mask" / "ok.nii.gz")
    shutil.copy(root / "img" / "vol.nii.gz", root / "img" / "vol2.nii.gz")
    table = pd.DataFrame({"file": ["img/a.png", "img/b.png", "img/vol.nii.gz", "img/vol2.nii.gz", "img/c.png"],
                          "patient": ["p1", "p2", "p3", "p4", "p5"],
                          "mask": ["mask/a.png", "mask/b.png", "mask/vol.nii.gz", "mask/ok.nii.gz", "mask/gone.png"]})
    columns = {"path": "file", "patient": "patient", "mask": "mask"}
    report = validate_table(root, table, "seg.csv", columns, {"type": "segmentation"})
    assert messages(report) == [
        "seg.csv row 3 (item img/b.png, mask/b.png): mask shape 16x40 does not match image shape 32x40 (img/b.png)",
        "seg.csv row 4 (item img/vol.nii.gz, mask/vol.nii.gz): mask shape 8x9x11 does not match image shape 8x9x10 "
        "(img/vol.nii.gz)",
        "seg.csv row 6 (item img/c.png, mask/gone.png): missing mask file",
    ]
    assert report.raise_if_problems("skip") == 3


def test_truncated_png_and_non_dicom_are_unreadable_with_the_readers_reason(root):
    data = (root / "img" / "a.png").read_bytes()
    (root / "img" / "a.png").write_bytes(data[: len(data) // 2])
    (root / "img" / "fake.dcm").write_text("not a dicom file")
    table = pd.DataFrame({"file": ["img/a.png", "img/fake.dcm", "img/notes.txt"], "patient": ["p1", "p2", "p3"],
                          "label": ["cat", "dog", "cat"]})
    (root / "img" / "notes.txt").write_text("hello")
    columns = {"path": "file", "patient": "patient", "label": "label"}
    report = validate_table(root, table, "t.csv", columns, MULTICLASS)
    got = messages(report)
    assert [p.check for p in report.problems] == ["unreadable"] * 3
    assert got[0].startswith("t.csv row 2 (img/a.png): unreadable file: not a readable image")
    assert got[1].startswith("t.csv row 3 (img/fake.dcm): unreadable file: not a readable DICOM file")
    assert got[2].startswith("t.csv row 4 (img/notes.txt): unreadable file: unsupported file type")
    # without reading, only existence is checked
    assert validate_table(root, table, "t.csv", columns, MULTICLASS, read_files=False).problems == []


def test_dicom_series_folder_is_read_as_one_volume(root):
    series = root / "series" / "s1"
    series.mkdir(parents=True)
    shutil.copy(pydicom.data.get_testdata_file("CT_small.dcm"), series / "1.dcm")
    (root / "series" / "empty").mkdir()
    table = pd.DataFrame({"file": ["series/s1", "series/empty"], "patient": ["p1", "p2"], "label": ["cat", "dog"]})
    report = validate_table(root, table, "t.csv", {"path": "file", "patient": "patient", "label": "label"},
                            MULTICLASS)
    assert report.items["modality"].tolist() == ["dicom-series"]
    assert report.summary["sizes"]["dicom-series"]["min"][2] == 1
    assert messages(report) == ["t.csv row 3 (series/empty): unreadable file: no files to read as a DICOM series"]


def test_declaration_errors_are_raised_not_reported(root):
    with pytest.raises(ValueError, match="declared classes"):
        validate_table(root, clean_table(), "t.csv", COLUMNS, {"type": "multiclass"})
    with pytest.raises(ValueError, match="exactly 2"):
        validate_table(root, clean_table(), "t.csv", COLUMNS, {"type": "binary", "classes": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="unknown column role"):
        validate_table(root, clean_table(), "t.csv", {**COLUMNS, "labl": "x"}, MULTICLASS)
