"""Preprocess stage on real generated DICOM files: arrays, item table, bad-input handling."""

import shutil

import numpy as np
import pandas as pd
import pytest

from medprobe.datasets.demo_cxr import generate
from medprobe.datasets.registry import get_dataset
from medprobe.download import write_manifest
from medprobe.io.dicom import DicomReadError
from medprobe.preprocess import preprocess_dataset, to_square
from medprobe.splits import SplitError

ENTRY = get_dataset("demo_cxr")


@pytest.fixture(scope="module")
def pristine_raw(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    generate(raw, n_patients=30, seed=3)
    write_manifest(raw)
    return raw


@pytest.fixture
def raw(pristine_raw, tmp_path):
    return shutil.copytree(pristine_raw, tmp_path / "raw")


def run(raw, out, on_error="fail", size=32, policy="pad"):
    settings = {"size": size, "resize_policy": policy, "voi_fallback": "percentile",
                "percentiles": [0.5, 99.5], "on_error": on_error}
    return preprocess_dataset("demo_cxr", ENTRY, raw, raw / "manifest.tsv", out, settings, {})


def test_arrays_and_item_table_agree(raw, tmp_path):
    spec = run(raw, tmp_path / "out")
    items = pd.read_parquet(tmp_path / "out" / "items.parquet")
    labels = pd.read_csv(raw / "labels.csv", dtype=str)
    assert len(items) == len(labels)
    for split in ("train", "val", "test"):
        array = np.load(tmp_path / "out" / f"{split}.npy", mmap_mode="r")
        part = items[items["split"] == split]
        assert array.shape == (len(part), 1, 32, 32) and array.dtype == np.uint8
        assert sorted(part["row"]) == list(range(len(part)))
        assert spec["counts"][split] == {"total": len(part), "ok": len(part)}
    assert items.groupby("patient_id")["split"].nunique().max() == 1
    assert set(items["photometric"]) == {"MONOCHROME1", "MONOCHROME2"}
    # NIH-style findings parsed into 0/1 columns
    first = labels.iloc[0]
    row = items.set_index("item_id").loc[first["Image Index"].removesuffix(".dcm")]
    for finding in ENTRY["tasks"]["findings"]["labels"]:
        assert row[f"label_{finding}"] == int(finding in first["Finding Labels"].split("|"))


def test_patient_in_two_splits_is_an_error(raw, tmp_path):
    split = pd.read_csv(raw / "split.csv", dtype=str)
    leaked = split.iloc[[0]].assign(split="test" if split.iloc[0]["split"] != "test" else "train")
    pd.concat([split, leaked]).to_csv(raw / "split.csv", index=False)
    with pytest.raises(SplitError, match=f"listed in more than one split, e.g. \\['{split.iloc[0]['Patient ID']}'\\]"):
        run(raw, tmp_path / "out")


def test_label_table_with_unknown_finding_names_file(raw, tmp_path):
    labels = pd.read_csv(raw / "labels.csv", dtype=str)
    labels.loc[0, "Finding Labels"] = "Pneumothorax"
    labels.to_csv(raw / "labels.csv", index=False)
    with pytest.raises(ValueError, match=r"labels.csv: unknown finding label\(s\) \['Pneumothorax'\]"):
        run(raw, tmp_path / "out")


def test_label_table_missing_column_names_file(raw, tmp_path):
    pd.read_csv(raw / "labels.csv", dtype=str).drop(columns="Patient ID").to_csv(raw / "labels.csv", index=False)
    with pytest.raises(ValueError, match=r"labels.csv: missing column\(s\) \['Patient ID'\]"):
        run(raw, tmp_path / "out")


def corrupt_one(raw):
    victim = sorted((raw / "images").glob("*.dcm"))[0]
    victim.write_bytes(victim.read_bytes()[:400])  # truncated mid-header
    write_manifest(raw)
    return victim


def test_corrupt_dicom_fails_naming_the_file(raw, tmp_path):
    victim = corrupt_one(raw)
    with pytest.raises(DicomReadError, match=victim.name):
        run(raw, tmp_path / "out")
    assert not (tmp_path / "out" / "items.parquet").exists()


def test_corrupt_dicom_skip_policy_counts_it(raw, tmp_path):
    victim = corrupt_one(raw)
    spec = run(raw, tmp_path / "out", on_error="skip")
    items = pd.read_parquet(tmp_path / "out" / "items.parquet")
    skipped = items[items["status"] != "ok"]
    assert skipped["item_id"].tolist() == [victim.stem]
    assert skipped["status"].iloc[0].startswith("skipped:") and victim.name in skipped["status"].iloc[0]
    split = skipped["split"].iloc[0]
    assert spec["counts"][split]["total"] == spec["counts"][split]["ok"] + 1
    array = np.load(tmp_path / "out" / f"{split}.npy")
    assert len(array) == spec["counts"][split]["ok"]


@pytest.mark.parametrize("policy", ["pad", "crop", "resize"])
def test_to_square_policies(policy):
    image = np.zeros((40, 80), dtype=np.float32)
    image[:, :40] = 1.0  # left half bright
    square = to_square(image, 20, policy)
    assert square.shape == (1, 20, 20)
    square = square[0]
    if policy == "pad":  # letterboxed: black bands top and bottom
        assert square[0].max() == 0 and square[-1].max() == 0 and square[10, :5].min() > 0.99
    elif policy == "crop":  # centre 40x40: left half of it bright
        assert square[:, :8].min() > 0.99 and square[:, -8:].max() < 0.01
    else:  # stretched: left half bright, full height
        assert square[:, :8].min() > 0.99 and square[0, :8].min() > 0.99


def test_to_square_keeps_rgb_channels():
    image = np.zeros((30, 30, 3), dtype=np.float32)
    image[..., 1] = 1.0  # pure green
    square = to_square(image, 10, "resize")
    assert square.shape == (3, 10, 10)
    assert square[1].min() > 0.99 and square[0].max() == 0 and square[2].max() == 0
