"""Figshare brain tumour (v7.3 .mat zips over HTTP), CheXpert and RSNA Pneumonia (local folders): fakes in the
real on-disk layouts go through download, read_items, iter_images and preprocess_dataset."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from fake_datasets import make_chexpert, make_figshare_brain_tumor, make_rsna, write_matlab_v73
from http_server import FileServer

from medprobe.datasets.adapters import LayoutError, chexpert, figshare_mat, rsna
from medprobe.datasets.registry import get_dataset, preprocess_settings, resolve_options
from medprobe.download import MANIFEST, dataset_root, fetch_dataset, fetch_http, read_manifest, write_manifest
from medprobe.io.images import ImageReadError, window
from medprobe.preprocess import preprocess_dataset
from medprobe.splits import SplitError, apply_split_policy

GLOBAL = {"size": 16, "resize_policy": "pad", "voi_fallback": "percentile", "percentiles": [0.5, 99.5],
          "on_error": "fail"}
COMPETITION5 = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]


def run_preprocess(name: str, raw: Path, out: Path, options: dict | None = None, **overrides) -> dict:
    options = resolve_options(name, options or {})
    settings = {**preprocess_settings(name, GLOBAL, options), **overrides}
    return preprocess_dataset(name, get_dataset(name), dataset_root(raw), raw / MANIFEST, out, settings, options)


def assert_split_shares(items: pd.DataFrame, fractions: dict) -> None:
    """Patient-level, and every split holds its share of the patients to within one."""
    per_patient = items.groupby("patient_id")["split"].agg(["nunique", "first"])
    assert (per_patient["nunique"] == 1).all()
    counts = per_patient["first"].value_counts()
    for split, fraction in fractions.items():
        assert abs(counts.get(split, 0) - fraction * len(per_patient)) <= 1, (split, counts.to_dict())


def fetch_local(name: str, folder: Path, raw: Path, **options) -> dict:
    return fetch_dataset(name, raw, {"path": str(folder), **options}, raw.parent / "downloads")


# ---- Figshare brain tumour ----------------------------------------------------------------------------------------

FIGSHARE = "figshare_brain_tumor"


@pytest.fixture(scope="module")
def figshare(tmp_path_factory):
    """Downloaded from a local mirror with the registry entry's own file list, the checksums swapped for the fakes'."""
    base = tmp_path_factory.mktemp("figshare")
    built = make_figshare_brain_tumor(base / "www")
    entry = copy.deepcopy(get_dataset(FIGSHARE))
    for file in entry["source"]["files"]:
        file["sha256"] = built["archives"][file["name"]]["sha256"]
    with FileServer(base / "www") as server:
        fetch_http(entry, base / "raw", {"mirror": server.base_url}, base / "downloads")
    return base / "raw", built


@pytest.fixture
def figshare_raw(figshare, tmp_path):
    return shutil.copytree(figshare[0], tmp_path / "raw")


def test_figshare_zips_extract_into_one_folder_each(figshare):
    raw, built = figshare
    listed = set(read_manifest(raw / MANIFEST))
    expected = {f"{row.archive.removesuffix('.zip')}/{row.item_id}.mat" for row in built["slices"].itertuples()}
    assert expected <= listed
    assert not any(name.endswith(".zip") for name in listed)


def test_figshare_preprocess_labels_patients_and_split(figshare, tmp_path):
    raw, built = figshare
    spec = run_preprocess(FIGSHARE, raw, tmp_path / "out")
    items = pd.read_parquet(tmp_path / "out" / "items.parquet").set_index("item_id")
    truth = built["slices"].set_index("item_id")
    assert sorted(items.index) == sorted(truth.index)
    assert (items.loc[truth.index, "patient_id"] == truth["patient_id"]).all()  # PID decoded from char codes
    classes = get_dataset(FIGSHARE)["tasks"]["tumor_type"]["labels"]
    one_hot = items.loc[truth.index, [f"label_{c}" for c in classes]].to_numpy()
    assert (one_hot.sum(axis=1) == 1).all()
    assert (one_hot.argmax(axis=1) + 1 == truth["label"].to_numpy()).all()
    assert_split_shares(items, get_dataset(FIGSHARE)["split"]["fractions"])
    assert all(c["ok"] == c["total"] for c in spec["counts"].values())
    assert spec["percentiles"] == [5, 95] and spec["voi_fallback"] == "percentile"
    assert np.load(tmp_path / "out" / "train.npy").shape == (spec["counts"]["train"]["ok"], 1, 16, 16)
    small = truth.index[truth["image"].map(len) == 12][0]
    assert (items.loc[small, "rows"], items.loc[small, "cols"]) == (12, 12)


def test_figshare_images_come_back_in_matlab_orientation(figshare):
    raw, built = figshare
    entry = get_dataset(FIGSHARE)
    items = figshare_mat.read_items(raw, entry, {}).set_index("item_id")
    truth = built["slices"].set_index("item_id")
    chosen = items.loc[["767", "1533"]]
    settings = preprocess_settings(FIGSHARE, GLOBAL, {})
    for index, image in figshare_mat.iter_images(raw, chosen, entry, settings):
        expected = window(truth.loc[index, "image"], "percentile", (5, 95))
        np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
        assert image.pixels[:, -1].mean() > image.pixels[:, 0].mean()  # the ramp runs left to right


def test_figshare_mat_without_image_is_an_image_error(figshare_raw, tmp_path):
    target = figshare_raw / "brainTumorDataPublic_767-1532" / "768.mat"
    write_matlab_v73(target, "cjdata", {"label": ("double", 2), "PID": ("char", "123456")})
    write_manifest(figshare_raw)
    with pytest.raises(ImageReadError, match=r"768\.mat: struct 'cjdata' has no field 'image'"):
        run_preprocess(FIGSHARE, figshare_raw, tmp_path / "out")
    spec = run_preprocess(FIGSHARE, figshare_raw, tmp_path / "out", on_error="skip")
    items = pd.read_parquet(tmp_path / "out" / "items.parquet").set_index("item_id")
    assert items.loc["768", "status"].startswith("skipped:") and "no field 'image'" in items.loc["768", "status"]
    assert sum(c["total"] - c["ok"] for c in spec["counts"].values()) == 1


@pytest.mark.parametrize("damage, message", [
    ("no_struct", r"5\.mat: has no struct 'cjdata' \(top-level names: \['other'\]\)"),
    ("bad_label", r"5\.mat: 'cjdata\.label' is \[4\.0\]; expected one of 1\.\.3"),
    ("truncated", r"5\.mat: not a readable MATLAB v7\.3 \(HDF5\) file"),
])
def test_figshare_unreadable_mat_names_the_file(figshare_raw, damage, message):
    target = figshare_raw / "brainTumorDataPublic_1-766" / "5.mat"
    if damage == "no_struct":
        write_matlab_v73(target, "other", {"label": ("double", 1)})
    elif damage == "bad_label":
        write_matlab_v73(target, "cjdata", {"label": ("double", 4), "PID": ("char", "1"), "image": ("int16", [[1]])})
    else:
        target.write_bytes(target.read_bytes()[:700])
    with pytest.raises(ImageReadError, match=message):
        figshare_mat.read_items(figshare_raw, get_dataset(FIGSHARE), {})


# ---- CheXpert -------------------------------------------------------------------------------------------------------

CHEXPERT = "chexpert"
UNCERTAIN_TO = {"zeros": 0, "ones": 1, "ignore": -1, "extra": 0}


@pytest.fixture(scope="module")
def chexpert_built(tmp_path_factory):
    return make_chexpert(tmp_path_factory.mktemp("chexpert") / "CheXpert-v1.0-small")


@pytest.fixture
def chexpert_copy(chexpert_built, tmp_path):
    return shutil.copytree(chexpert_built["root"], tmp_path / "CheXpert-v1.0-small")


def expected_label(raw: str, policy: str) -> int:
    return {"": 0, "0.0": 0, "1.0": 1, "-1.0": UNCERTAIN_TO[policy]}[raw]  # blank (not mentioned) is 0


def test_chexpert_fetch_local_and_preprocess(chexpert_built, tmp_path):
    folder = chexpert_built["root"]
    raw = tmp_path / "raw"
    fetch_local(CHEXPERT, folder, raw)
    assert dataset_root(raw) == folder.resolve()
    assert not (folder / MANIFEST).exists()  # the user's folder is only read
    listed = read_manifest(raw / MANIFEST)
    assert {"train.csv", "valid.csv", "train/patient00001/study1/view1_frontal.jpg"} <= set(listed)

    spec = run_preprocess(CHEXPERT, raw, tmp_path / "out", {"path": str(folder)})
    items = pd.read_parquet(tmp_path / "out" / "items.parquet").set_index("item_id")
    rows = chexpert_built["rows"].set_index("item_id")
    frontal = rows[rows["view"] == "Frontal"]
    assert sorted(items.index) == sorted(frontal.index)
    assert set(items.loc[frontal.index[frontal["split"] == "test"], "split"]) == {"test"}
    assert set(items.loc[frontal.index[frontal["split"] == "trainval"], "split"]) == {"train", "val"}
    assert items.groupby("patient_id")["split"].nunique().max() == 1
    for observation in COMPETITION5:
        expected = frontal[observation].map(lambda v: expected_label(v, "zeros"))
        assert (items.loc[frontal.index, f"label_{observation}"] == expected).all(), observation
    assert all(c["ok"] == c["total"] > 0 for c in spec["counts"].values())


@pytest.mark.parametrize("policy", ["zeros", "ones", "ignore", "extra"])
def test_chexpert_uncertainty_policies(chexpert_built, policy):
    folder = chexpert_built["root"]
    entry = get_dataset(CHEXPERT)
    items = chexpert.read_items(folder, entry, resolve_options(CHEXPERT, {"uncertain": policy})).set_index("item_id")
    rows = chexpert_built["rows"].set_index("item_id").loc[items.index]
    values = set()
    for observation in COMPETITION5:
        expected = rows[observation].map(lambda v: expected_label(v, policy))
        assert (items[f"label_{observation}"] == expected).all(), observation
        assert (items[f"label_{observation} uncertain"] == (rows[observation] == "-1.0")).all(), observation
        values |= set(items[f"label_{observation}"])
    assert values == ({0, 1, -1} if policy == "ignore" else {0, 1})
    assert all(items[c].dtype == np.int8 for c in items.columns if c.startswith("label_"))
    split = apply_split_policy(items.reset_index(), entry["split"], folder, seed=0, source="chexpert",
                               stratify_labels=COMPETITION5)
    assert set(split["split"]) == {"train", "val", "test"}


def test_chexpert_views_all_keeps_laterals(chexpert_built):
    items = chexpert.read_items(chexpert_built["root"], get_dataset(CHEXPERT), {"views": "all"})
    assert sorted(items["item_id"]) == sorted(chexpert_built["rows"]["item_id"])
    assert items["item_id"].str.endswith("_lateral").sum() == (chexpert_built["rows"]["view"] == "Lateral").sum()


def test_chexpert_patient_in_train_and_valid_is_refused(chexpert_copy):
    valid = pd.read_csv(chexpert_copy / "valid.csv", dtype=str, keep_default_na=False)
    leaked = valid.iloc[[0]].assign(Path="CheXpert-v1.0-small/valid/patient00002/study9/view1_frontal.jpg")
    pd.concat([valid, leaked]).to_csv(chexpert_copy / "valid.csv", index=False)
    entry = get_dataset(CHEXPERT)
    items = chexpert.read_items(chexpert_copy, entry, {})
    with pytest.raises(SplitError, match=r"appear in more than one split.*patient00002"):
        apply_split_policy(items, entry["split"], chexpert_copy, seed=0, source="chexpert",
                           stratify_labels=COMPETITION5)


def test_chexpert_missing_folder_or_table_shows_the_layout(chexpert_copy, tmp_path):
    layout = get_dataset(CHEXPERT)["source"]["layout"]
    with pytest.raises(LayoutError, match="does not exist. Expected layout") as err:
        fetch_local(CHEXPERT, tmp_path / "nowhere", tmp_path / "raw")
    assert layout in str(err.value)
    with pytest.raises(LayoutError, match="train.csv is in .*CheXpert-v1.0-small: set `path` to that folder"):
        fetch_local(CHEXPERT, tmp_path, tmp_path / "raw")
    (chexpert_copy / "train.csv").unlink()
    with pytest.raises(LayoutError, match="missing train.csv. Expected layout") as err:
        fetch_local(CHEXPERT, chexpert_copy, tmp_path / "raw")
    assert layout in str(err.value)
    with pytest.raises(ValueError, match="set the dataset option `path`"):
        fetch_dataset(CHEXPERT, tmp_path / "raw", {}, tmp_path / "downloads")


def test_chexpert_bad_label_value_names_file_column_and_line(chexpert_copy):
    table = pd.read_csv(chexpert_copy / "train.csv", dtype=str, keep_default_na=False)
    table.loc[2, "Edema"] = "2.0"
    table.to_csv(chexpert_copy / "train.csv", index=False)
    with pytest.raises(ValueError, match=r"train\.csv: column 'Edema' holds \['2\.0'\] on line\(s\) \[4\]"):
        chexpert.read_items(chexpert_copy, get_dataset(CHEXPERT), {"views": "all"})


def test_chexpert_bad_path_names_file_and_line(chexpert_copy):
    table = pd.read_csv(chexpert_copy / "valid.csv", dtype=str, keep_default_na=False)
    table.loc[1, "Path"] = "CheXpert-v1.0-small/valid/view1_frontal.jpg"
    table.to_csv(chexpert_copy / "valid.csv", index=False)
    with pytest.raises(ValueError, match=r"valid\.csv: Path on line\(s\) \[3\] is not"):
        chexpert.read_items(chexpert_copy, get_dataset(CHEXPERT), {"views": "all"})


def test_chexpert_corrupt_jpeg_is_an_image_error(chexpert_copy):
    entry = get_dataset(CHEXPERT)
    items = chexpert.read_items(chexpert_copy, entry, {}).iloc[:2]
    broken = chexpert_copy / items.iloc[1]["source_file"]
    broken.write_bytes(broken.read_bytes()[:40])
    results = list(chexpert.iter_images(chexpert_copy, items, entry, preprocess_settings(CHEXPERT, GLOBAL, {})))
    assert results[0][1].pixels.shape == (24, 20)
    assert isinstance(results[1][1], ImageReadError) and str(broken) in str(results[1][1])


# ---- RSNA Pneumonia -----------------------------------------------------------------------------------------------

RSNA = "rsna_pneumonia"


@pytest.fixture(scope="module")
def rsna_built(tmp_path_factory):
    return make_rsna(tmp_path_factory.mktemp("rsna") / "rsna-pneumonia-detection-challenge")


@pytest.fixture
def rsna_copy(rsna_built, tmp_path):
    return shutil.copytree(rsna_built["root"], tmp_path / "rsna")


def test_rsna_fetch_local_and_preprocess(rsna_built, tmp_path):
    folder, raw = rsna_built["root"], tmp_path / "raw"
    fetch_local(RSNA, folder, raw)
    spec = run_preprocess(RSNA, raw, tmp_path / "out", {"path": str(folder)})
    items = pd.read_parquet(tmp_path / "out" / "items.parquet").set_index("item_id")
    assert items["label_Pneumonia"].to_dict() == rsna_built["targets"]  # max Target over an image's box rows
    assert not set(rsna_built["test_ids"]) & set(items.index)
    assert_split_shares(items, get_dataset(RSNA)["split"]["fractions"])
    assert (items.groupby("split")["label_Pneumonia"].nunique() == 2).all()  # stratified: both classes everywhere
    assert all(c["ok"] == c["total"] for c in spec["counts"].values())
    assert set(items["voi_source"]) == {"minmax"} and set(items["photometric"]) == {"MONOCHROME2"}


def test_rsna_jpeg_baseline_dicom_is_decoded(rsna_built):
    folder, entry = rsna_built["root"], get_dataset(RSNA)
    items = rsna.read_items(folder, entry, {}).iloc[:3]
    settings = preprocess_settings(RSNA, GLOBAL, {})
    for index, image in rsna.iter_images(folder, items, entry, settings):
        stored = pydicom.dcmread(folder / items.loc[index, "source_file"]).pixel_array.astype(float)
        np.testing.assert_allclose(image.pixels, window(stored, "minmax", (0, 100)), atol=1e-6)
        original = rsna_built["pixels"][items.loc[index, "item_id"]]
        assert np.abs(stored - original).mean() < 8  # lossy JPEG, quality 95


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
def test_rsna_truncated_dicom_is_an_image_error(rsna_copy, tmp_path):
    entry = get_dataset(RSNA)
    items = rsna.read_items(rsna_copy, entry, {})
    broken = rsna_copy / items.iloc[0]["source_file"]
    broken.write_bytes(broken.read_bytes()[:-100])  # cut inside the pixel data, like an interrupted copy
    raw = tmp_path / "raw"
    fetch_local(RSNA, rsna_copy, raw)
    with pytest.raises(ImageReadError, match=items.iloc[0]["item_id"]):
        run_preprocess(RSNA, raw, tmp_path / "out", {"path": str(rsna_copy)})
    spec = run_preprocess(RSNA, raw, tmp_path / "out", {"path": str(rsna_copy)}, on_error="skip")
    assert sum(c["total"] - c["ok"] for c in spec["counts"].values()) == 1


def test_rsna_target_other_than_0_or_1_names_file_and_lines(rsna_copy):
    table = pd.read_csv(rsna_copy / "stage_2_train_labels.csv", dtype=str, keep_default_na=False)
    table.loc[[1, 4], "Target"] = ["2", "yes"]
    table.to_csv(rsna_copy / "stage_2_train_labels.csv", index=False)
    with pytest.raises(ValueError, match=r"stage_2_train_labels\.csv: column 'Target' must be 0 or 1; "
                                         r"line\(s\) \[3, 6\] hold \['2', 'yes'\]"):
        rsna.read_items(rsna_copy, get_dataset(RSNA), {})


def test_rsna_missing_image_folder_shows_the_layout(rsna_copy, tmp_path):
    shutil.rmtree(rsna_copy / "stage_2_train_images")
    with pytest.raises(LayoutError, match="missing stage_2_train_images. Expected layout") as err:
        fetch_local(RSNA, rsna_copy, tmp_path / "raw")
    assert "stage_2_test_images/                  optional; unlabelled, not used" in str(err.value)
