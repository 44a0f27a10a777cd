"""CT-RATE and BTCV (local folders) and Montgomery's lung masks: fakes in the real layouts, fetched by the real
download stage, read by their adapters, then preprocessed and masked end to end."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from fake_datasets import BTCV_AFFINE, BTCV_HU, make_btcv, make_ct_rate, make_montgomery
from http_server import FileServer
from PIL import Image as PILImage

from medprobe.datasets.adapters import LayoutError, btcv, ct_rate, montgomery
from medprobe.datasets.registry import get_dataset, resolve_options
from medprobe.download import dataset_root, fetch_dataset, fetch_http, write_manifest
from medprobe.io.images import ImageReadError
from medprobe.io.volumes import VolumeReadError
from medprobe.masks import write_masks
from medprobe.preprocess import preprocess_dataset

SETTINGS = {"size": 16, "resize_policy": "pad", "voi_fallback": "percentile", "percentiles": [0.5, 99.5],
            "on_error": "fail", "slice_axis": "axial", "ct_window": "wide"}


def grey(hu: float) -> int:
    """The uint8 value of a Hounsfield unit in the wide window [-1024, 600], worked out by hand."""
    return int(np.clip(np.rint((hu + 1024) / 1624 * 255), 0, 255))


def fetch_local(dataset: str, root: Path, tmp_path: Path, **options) -> tuple[Path, dict]:
    raw = tmp_path / "raw"
    fetch_dataset(dataset, raw, {"path": str(root), **options}, tmp_path / "downloads")
    return raw, resolve_options(dataset, {"path": str(root), **options})


def preprocess(dataset: str, raw: Path, out: Path, options: dict) -> tuple[dict, pd.DataFrame]:
    spec = preprocess_dataset(dataset, get_dataset(dataset), dataset_root(raw), raw / "manifest.tsv", out, SETTINGS,
                              options)
    return spec, pd.read_parquet(out / "items.parquet")


def copy_of(root: Path, tmp_path: Path) -> Path:
    return shutil.copytree(root, tmp_path / "copy")


# ---- CT-RATE ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ct_fake(tmp_path_factory):
    return make_ct_rate(tmp_path_factory.mktemp("ct_rate") / "CT-RATE")


def natural(stem: str) -> tuple:
    _, patient, scan, reconstruction = stem.split("_")
    return int(patient), scan, int(reconstruction)


def test_ct_rate_items_follow_the_label_tables(ct_fake):
    entry, volumes = get_dataset("ct_rate"), ct_fake["volumes"]
    items = ct_rate.read_items(ct_fake["root"], entry, {})
    assert len(entry["tasks"]["abnormalities"]["labels"]) == 18
    assert sorted(items["item_id"]) == sorted(volumes)
    for official, split in (("train", "trainval"), ("valid", "test")):
        part = items[items["split"] == split]
        assert part["item_id"].tolist() == sorted((s for s in volumes if s.startswith(official)), key=natural)
    assert items["item_id"].tolist().index("train_10_a_1") > items["item_id"].tolist().index("train_9_a_1")
    labels = [f"label_{name}" for name in entry["tasks"]["abnormalities"]["labels"]]
    for row in items.itertuples(index=False):
        truth = volumes[row.item_id]
        assert row.patient_id == truth["patient"] and row.source_file == truth["files"]["fixed"]
        assert items.loc[items["item_id"] == row.item_id, labels].iloc[0].tolist() == truth["labels"]
    assert set(items["hu_from"]) == {"nifti"} and items[labels].dtypes.eq("int8").all()


def test_ct_rate_both_releases_give_the_same_hounsfield_volumes(ct_fake):
    entry, volumes = get_dataset("ct_rate"), ct_fake["volumes"]
    for release in ("fixed", "original"):
        items = ct_rate.read_items(ct_fake["root"], entry, {"release": release})
        for index, volume in ct_rate.iter_volumes(ct_fake["root"], items, entry, SETTINGS):
            truth = volumes[items.at[index, "item_id"]]
            expected = nib.as_closest_canonical(nib.Nifti1Image(truth["hu"].astype(np.float32), truth["affine"]))
            np.testing.assert_array_equal(volume.data, np.asarray(expected.dataobj))
            np.testing.assert_allclose(volume.affine, expected.affine, atol=1e-6)
    original = ct_rate.read_items(ct_fake["root"], entry, {"release": "original"})
    assert set(original["hu_from"]) == {"metadata"}
    rescaled = {json.loads(row)["RescaleSlope"] for row in original["metadata_row"]}
    assert rescaled == {"1", "2"}  # the fake stores a few volumes at slope 2, intercept -2048


@pytest.mark.parametrize("release", ["fixed", "original"])
def test_ct_rate_fetch_and_preprocess(ct_fake, tmp_path, release):
    raw, options = fetch_local("ct_rate", ct_fake["root"], tmp_path, release=release)
    spec, items = preprocess("ct_rate", raw, tmp_path / "out", options)
    volumes = ct_fake["volumes"]
    assert sorted(items.loc[items["split"] == "test", "item_id"]) == sorted(s for s in volumes if s[:5] == "valid")
    assert (items["split"] == "val").any() and items.groupby("patient_id")["split"].nunique().max() == 1
    assert spec["intensity"]["window"] == "wide" and spec["tasks"]["abnormalities"]["type"] == "multilabel"
    for split in ("train", "val", "test"):
        array = np.load(tmp_path / "out" / f"{split}.npy")
        for row in items[items["split"] == split].itertuples():
            truth = volumes[row.item_id]
            slices = array[row.slice_start:row.slice_stop, 0]
            canonical = nib.as_closest_canonical(nib.Nifti1Image(truth["hu"], truth["affine"]))
            assert len(slices) == canonical.shape[2]
            if truth["orientation"] == [1, 0, 0, 0, 1, 0]:  # axial acquisition
                assert (slices[:, 8, 8] == grey(40)).all()  # the centre is body, whatever the padding
                row_, col_ = np.unravel_index(np.argmax(slices[0]), (16, 16))
                assert row_ < 8 and col_ < 8  # the 700 HU marker at the patient's right front: top left
            else:  # sagittal acquisition: the file's rows run head to foot, air above and below the body
                assert (slices[1:-1, 8, 8] == grey(40)).all() and (slices[[0, -1], 8, 8] == grey(-1000)).all()
    if release == "original":  # byte-identical to the fixed release's arrays
        fixed_raw, fixed_options = fetch_local("ct_rate", ct_fake["root"], tmp_path / "fixed", release="fixed")
        preprocess("ct_rate", fixed_raw, tmp_path / "out_again", fixed_options)
        for split in ("train", "val", "test"):
            assert (tmp_path / "out" / f"{split}.npy").read_bytes() == \
                   (tmp_path / "out_again" / f"{split}.npy").read_bytes()


def test_ct_rate_max_volumes_reads_the_first_volumes_of_each_split(ct_fake, tmp_path):
    entry, volumes = get_dataset("ct_rate"), ct_fake["volumes"]
    items = ct_rate.read_items(ct_fake["root"], entry, {"max_volumes": 4})
    for official in ("train", "valid"):
        first = sorted((s for s in volumes if s.startswith(official)), key=natural)[:4]
        assert [i for i in items["item_id"] if i.startswith(official)] == first
    root = copy_of(ct_fake["root"], tmp_path)
    kept = set(items["source_file"])
    for path in (root / "dataset").glob("*_fixed/*/*/*.nii.gz"):
        if path.relative_to(root).as_posix() not in kept:
            path.unlink()
    ct_rate.check_layout(root, entry, {"max_volumes": 4})  # a partial download is enough for the cap
    with pytest.raises(LayoutError, match=r"(?s)of the 29 volumes listed in the label tables are missing.*"
                                          r"max_volumes.*hf download"):
        ct_rate.check_layout(root, entry, {})
    for bad in (0, "4", True):
        with pytest.raises(ValueError, match="max_volumes=.* must be a positive integer"):
            ct_rate.read_items(root, entry, {"max_volumes": bad})


def test_ct_rate_layout_errors_say_what_to_download(ct_fake, tmp_path):
    entry = get_dataset("ct_rate")
    with pytest.raises(ValueError, match=r"(?s)set the dataset option `path`.*HF_TOKEN.*"
                                         r"hf download ibrahimhamamci/CT-RATE --repo-type dataset"):
        fetch_dataset("ct_rate", tmp_path / "raw", {}, tmp_path / "downloads")
    root = copy_of(ct_fake["root"], tmp_path)
    (root / "dataset/multi_abnormality_labels/valid_predicted_labels.csv").unlink()
    with pytest.raises(LayoutError, match=r"(?s)missing dataset/multi_abnormality_labels/valid_predicted_labels.csv"
                                          r"\. Expected layout:.*train_fixed"):
        fetch_dataset("ct_rate", tmp_path / "raw", {"path": str(root)}, tmp_path / "downloads")
    assert not (tmp_path / "raw").exists()
    shutil.rmtree(root)
    root = copy_of(ct_fake["root"], tmp_path)
    for folder in ("train_fixed", "valid_fixed"):
        shutil.rmtree(root / "dataset" / folder)
    with pytest.raises(LayoutError, match="set the dataset option release: original"):
        ct_rate.check_layout(root, entry, {})
    with pytest.raises(LayoutError, match="set it to the folder that holds dataset/"):
        ct_rate.check_layout(root / "dataset", entry, {"release": "original"})
    (root / "dataset/metadata/validation_metadata.csv").unlink()
    with pytest.raises(LayoutError, match="missing dataset/metadata/validation_metadata.csv"):
        ct_rate.check_layout(root, entry, {"release": "original"})


def test_ct_rate_malformed_tables_are_named(ct_fake, tmp_path):
    entry = get_dataset("ct_rate")
    root = copy_of(ct_fake["root"], tmp_path)
    table = root / "dataset/multi_abnormality_labels/train_predicted_labels.csv"
    text = table.read_text()
    lines = text.splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",2"
    table.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"{table}: column 'Interlobular septal thickening' holds \\['2'\\] on "
                                         r"line\(s\) \[4\]; expected 0 or 1"):
        ct_rate.read_items(root, entry, {})
    table.write_text(text.replace("train_2_a_1.nii.gz", "train_2_a.nii.gz"))
    with pytest.raises(ValueError, match=r"VolumeName on line\(s\) \[3\] is not train_<patient>_<scan>_"):
        ct_rate.read_items(root, entry, {})
    table.write_text(text.replace(",Cardiomegaly,", ",Cardiomegally,"))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['Cardiomegaly'\]"):
        ct_rate.read_items(root, entry, {})


def test_ct_rate_unreadable_or_non_hu_volumes_are_named(ct_fake, tmp_path):
    entry = get_dataset("ct_rate")
    root = copy_of(ct_fake["root"], tmp_path)
    metadata = root / "dataset/metadata/validation_metadata.csv"
    table = pd.read_csv(metadata, dtype=str, keep_default_na=False)
    table.loc[table["VolumeName"] == "valid_2_a_1.nii.gz", "ZSpacing"] = ""  # as some real rows are
    table.to_csv(metadata, index=False)
    fixed_file = root / ct_fake["volumes"]["valid_1_a_1"]["files"]["fixed"]
    shutil.copy(root / ct_fake["volumes"]["valid_1_a_1"]["files"]["original"], fixed_file)  # stored values
    corrupt = root / ct_fake["volumes"]["valid_3_a_1"]["files"]["fixed"]
    corrupt.write_bytes(corrupt.read_bytes()[:60])  # a download cut short
    errors = {}
    for release in ("fixed", "original"):
        items = ct_rate.read_items(root, entry, {"release": release})
        errors[release] = {items.at[i, "item_id"]: str(v) for i, v in ct_rate.iter_volumes(root, items, entry, {})
                           if isinstance(v, VolumeReadError)}
    assert set(errors["fixed"]) == {"valid_1_a_1", "valid_3_a_1"}
    assert errors["fixed"]["valid_1_a_1"].startswith(f"{fixed_file}: lowest voxel is")
    assert "not Hounsfield units" in errors["fixed"]["valid_1_a_1"] and "release: original" in errors["fixed"][
        "valid_1_a_1"]
    assert errors["fixed"]["valid_3_a_1"].startswith(f"{corrupt}: ")
    assert set(errors["original"]) == {"valid_2_a_1"}
    assert "dataset/metadata/validation_metadata.csv gives ZSpacing ''" in errors["original"]["valid_2_a_1"]
    write_manifest(root)
    with pytest.raises(VolumeReadError, match="valid_2_a_1.nii.gz: dataset/metadata/validation_metadata.csv gives"):
        preprocess_dataset("ct_rate", entry, root, root / "manifest.tsv", tmp_path / "out", SETTINGS,
                           {"release": "original"})


# ---- BTCV ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def btcv_fake(tmp_path_factory):
    return make_btcv(tmp_path_factory.mktemp("btcv") / "Abdomen")


def test_btcv_items_are_the_30_labelled_cases(btcv_fake):
    entry = get_dataset("btcv")
    items = btcv.read_items(btcv_fake["root"], entry, {})
    assert items["item_id"].tolist() == [f"img{n:04d}" for n in [*range(1, 11), *range(21, 41)]]
    assert (items["patient_id"] == items["item_id"]).all() and set(items["split"]) == {""}
    assert items["mask_file"].tolist() == [f"RawData/Training/label/label{i[3:]}.nii.gz" for i in items["item_id"]]
    assert entry["tasks"]["organs"]["labels"][5] == "liver" and len(entry["tasks"]["organs"]["labels"]) == 13


def test_btcv_fetch_preprocess_and_masks(btcv_fake, tmp_path):
    raw, options = fetch_local("btcv", btcv_fake["root"], tmp_path)
    spec, items = preprocess("btcv", raw, tmp_path / "out", options)
    assert {s: spec["counts"][s]["total"] for s in ("train", "val", "test")} == {"train": 18, "val": 6, "test": 6}
    summary = write_masks("btcv", get_dataset("btcv"), dataset_root(raw), tmp_path / "out" / "items.parquet", spec,
                          tmp_path / "out")
    assert summary["classes"][1:] == get_dataset("btcv")["tasks"]["organs"]["labels"]
    for split in ("train", "val", "test"):
        cases = items.loc[items["split"] == split, "item_id"]
        # 16 x 16 slices at size 16: no resampling, so every labelled voxel is one mask pixel
        assert summary["pixels_per_class"][split] == sum(btcv_fake["cases"][c]["counts"] for c in cases).tolist()
        images = np.load(tmp_path / "out" / f"{split}.npy")[:, 0]
        masks = np.load(tmp_path / "out" / f"masks_{split}.npy")
        assert masks.shape == images.shape == (3 * len(cases), 16, 16)
        for value, hu in enumerate(BTCV_HU, start=1):  # image and mask aligned: each organ's pixels hold its grey
            assert set(np.unique(images[masks == value])) <= {grey(hu)}
        assert set(np.unique(images[masks == 0])) == {grey(-1000), grey(0)}


def test_btcv_layout_errors_name_the_files(btcv_fake, tmp_path):
    entry = get_dataset("btcv")
    root = copy_of(btcv_fake["root"], tmp_path)
    (root / "RawData/Training/label/label0007.nii.gz").unlink()
    with pytest.raises(LayoutError, match=r"(?s)missing RawData/Training/label/label0007.nii.gz\. Expected layout:"
                                          r".*Multi-Atlas Labeling Beyond the Cranial Vault"):
        fetch_dataset("btcv", tmp_path / "raw", {"path": str(root)}, tmp_path / "downloads")
    with pytest.raises(LayoutError, match=f"missing RawData/Training/img, RawData/Training/label\\. Expected layout:"
                                          f"(?s:.*)RawData/Training/img is in {root}: set `path` to that folder"):
        btcv.check_layout(tmp_path, entry, {})
    with pytest.raises(LayoutError, match="dataset folder .*nothing does not exist"):
        btcv.read_items(tmp_path / "nothing", entry, {})


def test_btcv_label_map_on_another_grid_is_refused(btcv_fake, tmp_path):
    entry = get_dataset("btcv")
    root = copy_of(btcv_fake["root"], tmp_path)
    label = root / "RawData/Training/label/label0003.nii.gz"
    shifted = BTCV_AFFINE.copy()
    shifted[2, 3] += 2.5
    nib.save(nib.Nifti1Image(btcv_fake["cases"]["img0003"]["labels"], shifted), label)
    items = btcv.read_items(root, entry, {})
    errors = [m for _, m in btcv.iter_masks(root, items, entry, {}) if isinstance(m, ImageReadError)]
    assert len(errors) == 1 and str(errors[0]).startswith(f"{label}: label grid (shape (16, 16, 3)) does not match")
    assert "affines differ by up to 2.5 mm" in str(errors[0])
    write_manifest(root)
    spec = preprocess_dataset("btcv", entry, root, root / "manifest.tsv", tmp_path / "out", SETTINGS, {})
    with pytest.raises(VolumeReadError, match="label0003.nii.gz: label grid"):
        write_masks("btcv", entry, root, tmp_path / "out" / "items.parquet", spec, tmp_path / "out")


# ---- Montgomery lung masks -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def montgomery_raw(tmp_path_factory):
    """The fake zip served over HTTP and fetched by the entry's own file list, checksum swapped for the fake's."""
    www = tmp_path_factory.mktemp("montgomery_www")
    fake = make_montgomery(www)
    entry = copy.deepcopy(get_dataset("montgomery"))
    for file in entry["source"]["files"]:
        file["sha256"] = fake["files"][file["name"]]["sha256"]
    raw = tmp_path_factory.mktemp("montgomery") / "raw"
    with FileServer(www) as server:
        fetch_http(entry, raw, {"mirror": server.base_url}, www.parent / "montgomery_cache")
    return raw, fake


def test_montgomery_lung_masks_join_both_lungs(montgomery_raw):
    raw, fake = montgomery_raw
    entry = get_dataset("montgomery")
    items = montgomery.read_items(raw, entry, {})
    for index, labels in montgomery.iter_masks(raw, items, entry, {}):
        left = np.asarray(PILImage.open(raw / items.at[index, "mask_file"])) > 0
        right = np.asarray(PILImage.open(raw / items.at[index, "mask_right_file"])) > 0
        np.testing.assert_array_equal(labels, left * 1 + right * 2)
        rows, cols = fake["shapes"][items.at[index, "item_id"]]
        assert labels.dtype == np.uint8 and labels.shape == (rows, cols)
        assert (labels == 1).sum() == (rows - 8) * (cols - 3 - (cols // 2 + 2))  # the fake's left-lung box
        assert (labels == 2).sum() == (rows - 8) * (cols // 2 - 5)


def test_montgomery_masks_end_to_end(montgomery_raw, tmp_path):
    raw, _ = montgomery_raw
    entry = get_dataset("montgomery")
    spec = preprocess_dataset("montgomery", entry, raw, raw / "manifest.tsv", tmp_path, SETTINGS, {})
    assert set(spec["tasks"]) == {"tb", "lungs"}
    summary = write_masks("montgomery", entry, raw, tmp_path / "items.parquet", spec, tmp_path)
    assert summary["classes"] == ["background", "left_lung", "right_lung"]
    for split in ("train", "val", "test"):
        masks = np.load(tmp_path / f"masks_{split}.npy")
        assert masks.shape == (spec["counts"][split]["ok"], 16, 16) and set(np.unique(masks)) == {0, 1, 2}
        # the patient's left lung is on the viewer's right, the right lung on the viewer's left
        assert np.nonzero(masks == 1)[2].min() >= 8 and np.nonzero(masks == 2)[2].max() < 8


def test_montgomery_overlapping_or_misfit_masks_are_named(montgomery_raw, tmp_path):
    raw = shutil.copytree(montgomery_raw[0], tmp_path / "raw")
    entry = get_dataset("montgomery")
    items = montgomery.read_items(raw, entry, {})
    first, second = items.index[:2]
    right = raw / items.at[first, "mask_right_file"]
    mask = np.asarray(PILImage.open(right)).copy()
    mask[4:6, -6:-3] = 255  # two rows of three pixels inside the left lung's box
    PILImage.fromarray(mask).save(right)
    left = raw / items.at[second, "mask_file"]
    PILImage.fromarray(np.zeros((7, 9), np.uint8)).save(left)
    errors = [str(m) for _, m in montgomery.iter_masks(raw, items, entry, {}) if isinstance(m, ImageReadError)]
    assert errors == [
        f"{raw / items.at[first, 'mask_file']}: 6 pixel(s) are marked in both this left-lung mask and the right-lung "
        f"mask {right}",
        f"{left}: lung mask is 7x9 (rows x cols), its radiograph {raw / items.at[second, 'source_file']} is "
        f"{'x'.join(map(str, PILImage.open(raw / items.at[second, 'source_file']).size[::-1]))}",
    ]
    write_manifest(raw)
    spec = preprocess_dataset("montgomery", entry, raw, raw / "manifest.tsv", tmp_path / "out", SETTINGS, {})
    with pytest.raises(ImageReadError, match="marked in both|lung mask is 7x9"):
        write_masks("montgomery", entry, raw, tmp_path / "out" / "items.parquet", spec, tmp_path / "out")
