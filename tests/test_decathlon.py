"""Medical Segmentation Decathlon and AMOS22: fakes in the real archive layouts, fetched by the real http source
from a local server, then read_items, the kfold policy, channel selection, preprocess_dataset and write_masks."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from fake_datasets import make_amos, make_decathlon
from http_server import FileServer

from medprobe.datasets.adapters import decathlon
from medprobe.datasets.entries.segmentation import MSD_TASKS
from medprobe.datasets.registry import get_dataset, preprocess_settings, resolve_options
from medprobe.download import fetch_dataset, fetch_http, write_manifest
from medprobe.io.images import ImageReadError
from medprobe.masks import write_masks
from medprobe.preprocess import preprocess_dataset
from medprobe.splits import SPLITS, SplitError, apply_split_policy

SETTINGS = {"size": 16, "resize_policy": "pad", "voi_fallback": "percentile", "percentiles": [0.5, 99.5],
            "on_error": "fail", "slice_axis": "axial", "ct_window": "wide"}
MODALITIES = {"msd_braintumour": "mri", "msd_heart": "mri", "msd_liver": "ct", "msd_hippocampus": "mri",
              "msd_prostate": "mri", "msd_lung": "ct", "msd_pancreas": "ct", "msd_hepaticvessel": "ct",
              "msd_spleen": "ct", "msd_colon": "ct"}


def fetched(tmp_path_factory, dataset: str, fake_maker) -> tuple[Path, dict]:
    """The fake served over HTTP and fetched by the entry's own file list (checksums swapped for the fake's)."""
    www = tmp_path_factory.mktemp(f"{dataset}_www")
    fake = fake_maker(www)
    entry = copy.deepcopy(get_dataset(dataset))
    for file in entry["source"]["files"]:
        for algorithm in ("sha256", "md5"):
            if algorithm in file:
                file[algorithm] = fake["files"][file["name"]][algorithm]
    raw = tmp_path_factory.mktemp(dataset) / "raw"
    with FileServer(www) as server:
        fetch_http(entry, raw, {"mirror": server.base_url}, www.parent / f"{dataset}_cache")
    return raw, fake


@pytest.fixture(scope="module")
def spleen(tmp_path_factory):
    return fetched(tmp_path_factory, "msd_spleen", lambda www: make_decathlon(www, "msd_spleen"))


@pytest.fixture(scope="module")
def brain(tmp_path_factory):
    return fetched(tmp_path_factory, "msd_braintumour", lambda www: make_decathlon(www, "msd_braintumour"))


@pytest.fixture(scope="module")
def amos(tmp_path_factory):
    return fetched(tmp_path_factory, "amos22", make_amos)


def run_preprocess(dataset: str, raw: Path, out: Path, options: dict, entry: dict | None = None) -> tuple[dict, dict]:
    entry = entry or get_dataset(dataset)
    options = resolve_options(dataset, options)
    settings = preprocess_settings(dataset, SETTINGS, options)
    spec = preprocess_dataset(dataset, entry, raw, raw / "manifest.tsv", out, settings, options)
    return spec, write_masks(dataset, entry, raw, out / "items.parquet", spec, out)


def test_every_msd_task_is_monais_mirror_with_its_md5():
    from monai.apps import DecathlonDataset

    assert sorted(MSD_TASKS) == sorted(MODALITIES)
    folders = {get_dataset(name)["labels"]["folder"] for name in MSD_TASKS}
    assert folders == set(DecathlonDataset.resource)
    for name in MSD_TASKS:
        entry = get_dataset(name)
        folder = entry["labels"]["folder"]
        (file,) = entry["source"]["files"]
        assert file == {"name": f"{folder}.tar", "url": DecathlonDataset.resource[folder],
                        "md5": DecathlonDataset.md5[folder], "extract": True}
        assert re.fullmatch(r"[0-9a-f]{32}", file["md5"])
        assert entry["modality"] == MODALITIES[name] and entry["dimensionality"] == "3d"
        assert entry["split"] == {"policy": "kfold", "n_folds": 5} and entry["access"] == "open"
        assert entry["options"]["fold"]["default"] == 0 and entry["options"]["fold"]["choices"] == [0, 1, 2, 3, 4]
        (task,) = entry["tasks"].values()
        assert task["type"] == "segmentation" and len(task["labels"]) == len(entry["labels"]["classes"])
        assert all(re.fullmatch(r"[a-z_]+", label) for label in task["labels"])
        assert ("channel" in entry["options"]) == (len(entry["labels"]["channels"]) > 1)
    assert get_dataset("msd_braintumour")["labels"]["channels"] == ["FLAIR", "T1w", "t1gd", "T2w"]
    assert get_dataset("msd_prostate")["labels"]["channels"] == ["T2", "ADC"]
    amos_file = get_dataset("amos22")["source"]["files"][0]
    assert amos_file["md5"] == "67717b2a483ac0744c89c3016b7aaef7" and len(amos_file["sha256"]) == 64
    assert get_dataset("amos22_mri")["source"]["files"] == get_dataset("amos22")["source"]["files"]


def test_read_items_follows_dataset_json(spleen):
    raw, fake = spleen
    entry = get_dataset("msd_spleen")
    items = decathlon.read_items(raw, entry, resolve_options("msd_spleen", {"fold": 3}))
    assert items["item_id"].tolist() == fake["train"]  # dataset.json's order; no ._ companions, no imagesTs
    assert (items["patient_id"] == items["item_id"]).all() and (items["split"] == "").all()
    assert items["source_file"].tolist() == [f"Task09_Spleen/imagesTr/{c}.nii.gz" for c in fake["train"]]
    assert items["mask_file"].tolist() == [f"Task09_Spleen/labelsTr/{c}.nii.gz" for c in fake["train"]]
    assert (items["test_fold"] == 3).all() and "channel" not in items
    assert (raw / "Task09_Spleen/imagesTr" / f"._{fake['train'][0]}.nii.gz").is_file()  # the real tar's strays


def test_kfold_folds_are_patient_level_disjoint_and_cover_everything(spleen):
    raw, _ = spleen
    entry = get_dataset("msd_spleen")
    # two scans of one patient must share a fold: give the first two cases one patient id
    base = decathlon.read_items(raw, entry, {"fold": 0})
    base.loc[1, "patient_id"] = base.loc[0, "patient_id"]
    splits = {}
    for fold in range(5):
        items = apply_split_policy(base.assign(test_fold=fold), entry["split"], raw, seed=7, source="msd_spleen")
        splits[fold] = items
        assert items["split"].iloc[0] == items["split"].iloc[1]
        assert set(items.loc[items["split"] == "test", "cv_fold"]) == {fold}
        assert set(items.loc[items["split"] == "val", "cv_fold"]) == {(fold + 1) % 5}
        assert items.groupby("patient_id")["split"].nunique().max() == 1
    folds = splits[0].set_index("item_id")["cv_fold"]
    assert all(s.set_index("item_id")["cv_fold"].equals(folds) for s in splits.values())  # one assignment
    patients_per_fold = splits[0].groupby("cv_fold")["patient_id"].nunique()
    assert patients_per_fold.max() - patients_per_fold.min() <= 1  # 9 patients dealt round-robin
    tests = [set(s.loc[s["split"] == "test", "item_id"]) for s in splits.values()]
    assert set().union(*tests) == set(base["item_id"]) and sum(map(len, tests)) == len(base)  # each case once
    again = apply_split_policy(base.assign(test_fold=2), entry["split"], raw, seed=7, source="msd_spleen")
    assert again["split"].tolist() == splits[2]["split"].tolist()
    shuffled = apply_split_policy(base.assign(test_fold=2).iloc[::-1], entry["split"], raw, seed=7, source="x")
    assert shuffled.set_index("item_id")["cv_fold"].sort_index().equals(folds.sort_index())  # not listing order
    other = apply_split_policy(base.assign(test_fold=2), entry["split"], raw, seed=8, source="msd_spleen")
    assert not other["cv_fold"].equals(splits[2]["cv_fold"])
    with pytest.raises(SplitError, match=r"needs one test fold in 0..4 .* found \[5\]"):
        apply_split_policy(base.assign(test_fold=5), entry["split"], raw, seed=7, source="msd_spleen")
    with pytest.raises(SplitError, match="needs at least 5 patients, found 4"):
        apply_split_policy(base.iloc[:5].assign(test_fold=0), entry["split"], raw, seed=7, source="msd_spleen")


@pytest.mark.parametrize("channel", [0, 2])
def test_iter_volumes_takes_the_chosen_channel(brain, channel):
    raw, fake = brain
    entry = get_dataset("msd_braintumour")
    items = decathlon.read_items(raw, entry, resolve_options("msd_braintumour", {"channel": channel}))
    assert (items["channel"] == channel).all()
    for (index, volume), case in zip(decathlon.iter_volumes(raw, items.iloc[:3], entry, SETTINGS), fake["train"]):
        stored = fake["images"][case][..., channel]
        # the fake's affine runs x and y backwards: canonical RAS+ is the stored array flipped on both
        np.testing.assert_array_equal(volume.data, np.flip(stored, (0, 1)))
        assert volume.meta["channel_name"] == ["FLAIR", "T1w", "t1gd", "T2w"][channel]
        assert volume.spacing == pytest.approx((0.8, 0.8, 2.5)) and volume.meta["original_shape"] == [16, 16, 8]
        (_, labels), = decathlon.iter_masks(raw, items.loc[[index]], entry, {})
        np.testing.assert_array_equal(labels, np.flip(fake["labels"][case], (0, 1)))


def test_msd_preprocess_and_masks_end_to_end(spleen, tmp_path):
    raw, fake = spleen
    spec, masks = run_preprocess("msd_spleen", raw, tmp_path, {"fold": 1, "split_seed": 3})
    items = pd.read_parquet(tmp_path / "items.parquet")
    assert spec["split_policy"] == {"policy": "kfold", "n_folds": 5} and spec["intensity"]["window"] == "wide"
    assert {s: c["total"] for s, c in spec["counts"].items()} == {"train": 6, "val": 2, "test": 2}
    assert set(items.loc[items["split"] == "test", "cv_fold"]) == {1}
    for split in SPLITS:
        slices = np.load(tmp_path / f"{split}.npy")
        labels = np.load(tmp_path / f"masks_{split}.npy")
        assert slices.shape == (8 * spec["counts"][split]["total"], 1, 16, 16) and labels.shape == (len(slices), 16, 16)
        assert masks["pixels_per_class"][split][1] == 27 * spec["counts"][split]["total"]  # one 3x3x3 box each
    assert masks["classes"] == ["background", "spleen"]
    first = items[items["split"] == "train"].iloc[0]
    volume = np.flip(fake["labels"][first["item_id"]], (0, 1))  # canonical; axial slice k, radiological display
    shown = np.load(tmp_path / "masks_train.npy")[first["slice_start"]:first["slice_stop"]]
    np.testing.assert_array_equal(shown, np.stack([np.flip(volume[:, :, k].T) for k in range(8)]))


def test_multichannel_preprocess_uses_mr_normalisation_on_the_channel(brain, tmp_path):
    raw, _ = brain
    spec, masks = run_preprocess("msd_braintumour", raw, tmp_path, {"channel": 3})
    assert spec["intensity"]["method"] == "mr_percentile" and spec["intensity"]["percentiles"] == [5.0, 95.0]
    assert (pd.read_parquet(tmp_path / "items.parquet")["channel"] == 3).all()
    assert masks["classes"] == ["background", "edema", "non_enhancing_tumor", "enhancing_tumour"]
    assert all(count > 0 for count in masks["pixels_per_class"]["test"])


def test_amos_official_validation_is_test_and_modalities_are_separate_entries(amos, tmp_path):
    raw, fake = amos
    ct = decathlon.read_items(raw, get_dataset("amos22"), {})
    assert set(ct["item_id"]) == set(fake["ct"]) - set(fake["test"])
    assert ct.set_index("item_id")["split"].to_dict() == {
        **{c: "trainval" for c in fake["training"] if c in fake["ct"]},
        **{c: "test" for c in fake["validation"] if c in fake["ct"]}}
    assert ct["source_file"].str.startswith("amos22/images").all()
    mri = decathlon.read_items(raw, get_dataset("amos22_mri"), {})
    assert set(mri["item_id"]) == set(fake["mri"]) and all(int(c[5:]) >= 500 for c in mri["item_id"])
    spec, masks = run_preprocess("amos22", raw, tmp_path / "ct", {})
    assert {s: c["total"] for s, c in spec["counts"].items()} == {"train": 5, "val": 1, "test": 3}
    assert spec["intensity"]["method"] == "ct_window" and len(masks["classes"]) == 16
    assert all(count > 0 for count in masks["pixels_per_class"]["test"])
    spec, _ = run_preprocess("amos22_mri", raw, tmp_path / "mri", {})
    assert spec["intensity"]["method"] == "mr_percentile"


def test_dataset_json_labels_disagreeing_with_the_entry_name_the_file(spleen, tmp_path):
    raw, _ = spleen
    copy_root = tmp_path / "raw"
    shutil.copytree(raw / "Task09_Spleen", copy_root / "Task09_Spleen")
    path = copy_root / "Task09_Spleen" / "dataset.json"
    document = json.loads(path.read_text())
    document["labels"] = {"0": "background", "1": "liver"}
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=re.escape(f"{path}: \"labels\" is {{'0': 'background', '1': 'liver'}}, "
                                                   "but the registry entry expects")):
        decathlon.read_items(copy_root, get_dataset("msd_spleen"), {})
    document["labels"] = {"0": "background", "1": "spleen"}
    document["modality"] = {"0": "MRI"}
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=re.escape(f"{path}: \"modality\" is {{'0': 'MRI'}}")):
        decathlon.read_items(copy_root, get_dataset("msd_spleen"), {})
    path.write_text("{not json")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: not valid JSON"):
        decathlon.read_items(copy_root, get_dataset("msd_spleen"), {})


def test_bad_listings_and_volumes_are_named(spleen, tmp_path):
    raw, fake = spleen
    root = tmp_path / "raw"
    shutil.copytree(raw / "Task09_Spleen", root / "Task09_Spleen")
    path = root / "Task09_Spleen" / "dataset.json"
    document = json.loads(path.read_text())
    (root / "Task09_Spleen/labelsTr" / f"{fake['train'][4]}.nii.gz").unlink()
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))} lists 1 file\(s\) that are not under .*"
                                         rf"labelsTr/{fake['train'][4]}.nii.gz"):
        decathlon.read_items(root, get_dataset("msd_spleen"), {})
    document["training"][0] = "./imagesTr/x.nii.gz"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"training\[0\] is './imagesTr/x.nii.gz'; expected"):
        decathlon.read_items(root, get_dataset("msd_spleen"), {})
    with pytest.raises(FileNotFoundError, match="dataset.json not found"):
        decathlon.read_items(tmp_path / "empty", get_dataset("msd_spleen"), {})
    # a corrupt volume, a 4-D file where one channel is expected, a 3-D file where four are
    entry = get_dataset("msd_spleen")
    image = root / "Task09_Spleen/imagesTr" / f"{fake['train'][1]}.nii.gz"
    image.write_bytes(image.read_bytes()[:200])
    four_d = root / "Task09_Spleen/imagesTr" / f"{fake['train'][2]}.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.float32), np.eye(4)), four_d)
    items = pd.DataFrame({"source_file": [str(image.relative_to(root)), str(four_d.relative_to(root))]})
    errors = [err for _, err in decathlon.iter_volumes(root, items, entry, SETTINGS)]
    assert all(isinstance(err, ImageReadError) for err in errors)
    assert str(errors[0]).startswith(str(image)) and "(4, 4, 4, 2); expected a 3-D volume" in str(errors[1])
    single = root / "single.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), single)
    items = pd.DataFrame({"source_file": [str(single.relative_to(root))], "channel": [1]})
    ((_, err),) = decathlon.iter_volumes(root, items, get_dataset("msd_braintumour"), SETTINGS)
    assert isinstance(err, ImageReadError) and str(err) == (f"{single}: has shape (4, 4, 4); expected (X, Y, Z, 4) "
                                                            "with channels FLAIR, T1w, t1gd, T2w")


def test_manifest_written_over_a_local_copy_preprocesses_the_same(brain, tmp_path):
    """A user's own extracted copy (no download) goes through the same path once its manifest exists."""
    raw, _ = brain
    root = tmp_path / "copy"
    shutil.copytree(raw, root, ignore=shutil.ignore_patterns("manifest.tsv"))
    write_manifest(root)
    spec, _ = run_preprocess("msd_braintumour", root, tmp_path / "out", {"fold": 4})
    items = pd.read_parquet(tmp_path / "out" / "items.parquet")
    assert set(items.loc[items["split"] == "test", "cv_fold"]) == {4} and spec["counts"]["val"]["total"] == 2


def test_amos_ct_and_mri_entries_share_one_download(tmp_path, monkeypatch):
    """The two AMOS22 entries read one 24 GB zip: fetched through fetch_dataset, it is downloaded once."""
    www = tmp_path / "www"
    fake = make_amos(www, ct_train=2, mri_train=1, ct_val=1, mri_val=1, n_test=1)
    for name in ("amos22", "amos22_mri"):
        file = get_dataset(name)["source"]["files"][0]
        for algorithm in ("sha256", "md5"):
            monkeypatch.setitem(file, algorithm, fake["files"]["amos22.zip"][algorithm])
    with FileServer(www) as server:
        for name in ("amos22", "amos22_mri"):
            fetch_dataset(name, tmp_path / name, {"mirror": server.base_url}, tmp_path / "downloads")
        assert server.count("/amos22.zip") == 1
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == ["amos22"]
    for name in ("amos22", "amos22_mri"):
        assert (tmp_path / name / "manifest.tsv").read_text() == (tmp_path / "amos22" / "manifest.tsv").read_text()
