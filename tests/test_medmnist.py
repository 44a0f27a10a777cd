"""MedMNIST+ entries and adapter on fake .npz files in the real layout: labels, row and volume streaming, preprocess
(2-D images and 3-D slice stacks), bad input."""

import copy
import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from fake_datasets import make_medmnist
from http_server import FileServer

from medprobe.datasets.adapters import medmnist as adapter
from medprobe.datasets.entries.medmnist import ENTRIES, SIZES_2D, SIZES_3D
from medprobe.datasets.registry import get_dataset, preprocess_settings, resolve_options
from medprobe.download import fetch_http, selected_files, write_manifest
from medprobe.io.images import ImageReadError
from medprobe.preprocess import preprocess_dataset, quantise, to_square

GLOBAL_SETTINGS = {"size": 224, "resize_policy": "resize", "voi_fallback": "percentile",
                   "percentiles": [0.5, 99.5], "on_error": "fail"}
FLAGS_2D = ["pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist", "breastmnist",
            "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist"]
FLAGS_3D = ["organmnist3d", "nodulemnist3d", "adrenalmnist3d", "fracturemnist3d", "vesselmnist3d", "synapsemnist3d"]


def test_every_set_and_size_is_pinned():
    assert sorted(ENTRIES) == sorted(FLAGS_2D + FLAGS_3D)
    for flag, entry in ENTRIES.items():
        sizes = SIZES_3D if flag in FLAGS_3D else SIZES_2D
        files = entry["source"]["files"]
        assert [f["when"] for f in files] == [{"size": s} for s in sizes], flag
        assert entry["options"]["size"]["choices"] == list(sizes) and entry["options"]["size"]["default"] == 28
        for size, file in zip(sizes, files):
            name = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
            assert file["name"] == name
            assert file["url"] == f"https://zenodo.org/records/10519652/files/{name}?download=1"
            assert re.fullmatch(r"[0-9a-f]{32}", file["md5"]), (flag, size)
        assert entry["dimensionality"] == ("3d" if flag in FLAGS_3D else "2d")
        assert entry["split"] == {"policy": "adapter"} and entry["access"] == "open"
        assert entry["channels"] in (1, 3) and "patient_id = item_id" in entry["notes"]
        (task,) = entry["tasks"].values()
        classes = entry["labels"]["classes"]
        assert task["labels"] == (classes[1:] if task["type"] == "binary" else classes)
    assert all(ENTRIES[f]["preprocess"] == {"size": "native"} for f in FLAGS_2D)
    md5s = [f["md5"] for e in ENTRIES.values() for f in e["source"]["files"]]
    assert len(set(md5s)) == len(md5s) == 12 * 4 + 6 * 2
    # spot checks against medmnist 3.0.2's info.py
    assert ENTRIES["pathmnist"]["source"]["files"][3]["md5"] == "2c51a510bcdc9cf8ddb2af93af1eadec"
    assert ENTRIES["organamnist"]["source"]["files"][0]["md5"] == "68e3f8846a6bd62f0c9bf841c0d9eacc"
    assert ENTRIES["chestmnist"]["tasks"]["findings"]["type"] == "multilabel"
    assert ENTRIES["retinamnist"]["tasks"]["dr_grade"]["type"] == "multiclass"
    assert ENTRIES["pathmnist"]["channels"] == 3 and ENTRIES["octmnist"]["channels"] == 1


def test_size_option_selects_one_file():
    options = resolve_options("dermamnist", {})
    assert [f["name"] for f in selected_files(get_dataset("dermamnist"), options)] == ["dermamnist.npz"]
    options = resolve_options("dermamnist", {"size": 128})
    assert [f["name"] for f in selected_files(get_dataset("dermamnist"), options)] == ["dermamnist_128.npz"]
    with pytest.raises(ValueError, match="size=128 is not one of"):
        resolve_options("vesselmnist3d", {"size": 128})


def test_download_of_the_chosen_size_then_preprocess(tmp_path):
    """The http source fetches only the chosen size's file; the registry's md5 is swapped for the fake's."""
    fake = make_medmnist(tmp_path / "www", "organcmnist", size=64)
    make_medmnist(tmp_path / "www", "organcmnist", size=28)
    entry = copy.deepcopy(get_dataset("organcmnist"))
    (chosen,) = [f for f in entry["source"]["files"] if f["when"] == {"size": 64}]
    chosen["md5"] = fake["md5"]
    raw = tmp_path / "raw"
    with FileServer(tmp_path / "www") as server:
        options = resolve_options("organcmnist", {"size": 64, "mirror": server.base_url})
        fetched = fetch_http(entry, raw, options, tmp_path / "downloads")
    assert [f["name"] for f in fetched["files"]] == ["organcmnist_64.npz"] and fetched["files"][0]["md5"] == fake["md5"]
    settings = preprocess_settings("organcmnist", GLOBAL_SETTINGS, options)
    spec = preprocess_dataset("organcmnist", entry, raw, raw / "manifest.tsv", tmp_path / "out", settings, options)
    assert spec["size"] == 64
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "val.npy")[:, 0], fake["arrays"]["val_images"])


@pytest.mark.parametrize("flag,size", [("pathmnist", 28), ("chestmnist", 64), ("pneumoniamnist", 28),
                                       ("retinamnist", 28)])
def test_read_items_labels(tmp_path, flag, size):
    fake = make_medmnist(tmp_path, flag, size=size)
    entry = get_dataset(flag)
    items = adapter.read_items(tmp_path, entry, {"size": size})
    task = entry["tasks"][entry["labels"]["task"]]
    columns = [f"label_{label}" for label in task["labels"]]
    assert (items["source_file"] == fake["name"]).all()
    assert (items["patient_id"] == items["item_id"]).all()
    for split in ("train", "val", "test"):
        part = items[items["split"] == split]
        raw = fake["arrays"][f"{split}_labels"]
        assert part["item_id"].tolist() == [f"{split}_{i:06d}" for i in range(len(raw))]
        got = part[columns].to_numpy()
        assert (got.dtype == np.int8) and got.shape == (len(raw), len(columns))
        if task["type"] == "multiclass":
            np.testing.assert_array_equal(got.argmax(axis=1), raw[:, 0])
            assert (got.sum(axis=1) == 1).all()
        else:  # binary: label 1 is the positive class; multilabel: one column per flag
            np.testing.assert_array_equal(got, raw)


@pytest.mark.parametrize("compressed", [True, False])
def test_streamed_rows_equal_np_load(tmp_path, compressed):
    fake = make_medmnist(tmp_path, "dermamnist", size=28, counts=(40, 3, 3), compressed=compressed)
    with zipfile.ZipFile(fake["path"]) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED if compressed
                                                                 else zipfile.ZIP_STORED}
        rows = adapter.NpyRows(archive, fake["path"], "train_images")
        expected = np.load(fake["path"])["train_images"]
        assert rows.shape == expected.shape and rows.dtype == np.uint8
        order = [0, 1, 2, 7, 39, 5, 6, 0, 38]  # forward skips, and jumps back that restart the stream
        for i in order:
            np.testing.assert_array_equal(rows.row(i), expected[i])
        with pytest.raises(ImageReadError, match=r"train_images'\[40\].*no such row"):
            rows.row(40)
        rows.close()

    entry = get_dataset("dermamnist")
    items = adapter.read_items(tmp_path, entry, {})
    images = list(adapter.iter_images(tmp_path, items.iloc[::-1], entry, GLOBAL_SETTINGS))
    assert [index for index, _ in images] == items.index[::-1].tolist()
    for index, image in images:
        split, row = items.at[index, "item_id"].split("_")
        pixels = fake["arrays"][f"{split}_images"][int(row)]
        assert image.pixels.dtype == np.float32 and image.pixels.shape == (28, 28, 3)
        np.testing.assert_array_equal(image.pixels, pixels.astype(np.float32) / np.float32(255))


@pytest.mark.parametrize("flag,size", [("bloodmnist", 64), ("chestmnist", 28)])
def test_preprocess_keeps_npz_pixels(tmp_path, flag, size):
    raw, out = tmp_path / "raw", tmp_path / "out"
    fake = make_medmnist(raw, flag, size=size)
    write_manifest(raw)
    options = resolve_options(flag, {"size": size})
    settings = preprocess_settings(flag, GLOBAL_SETTINGS, options)
    assert settings["size"] == "native"
    spec = preprocess_dataset(flag, get_dataset(flag), raw, raw / "manifest.tsv", out, settings, options)
    assert spec["size"] == size and spec["native_size"] and spec["channels"] == get_dataset(flag)["channels"]
    items = pd.read_parquet(out / "items.parquet")
    for split in ("train", "val", "test"):
        array = np.load(out / f"{split}.npy")
        pixels = fake["arrays"][f"{split}_images"]
        expected = pixels[:, None] if pixels.ndim == 3 else np.moveaxis(pixels, 3, 1)
        np.testing.assert_array_equal(array, expected)
        part = items[items["split"] == split].sort_values("row")
        assert part["item_id"].tolist() == [f"{split}_{i:06d}" for i in range(len(pixels))]
        assert spec["counts"][split] == {"total": len(pixels), "ok": len(pixels)}


VOLUME_SETTINGS = {"size": 28, "resize_policy": "pad", "voi_fallback": "percentile", "percentiles": [0.5, 99.5],
                   "on_error": "fail", "slice_axis": "axial", "ct_window": "wide"}


def test_3d_entries_keep_medmnist_intensities_and_slice_axially():
    for flag in FLAGS_3D:
        entry = ENTRIES[flag]
        assert entry["intensity"] == "normalised" and entry["preprocess"] == {"size": 64, "slice_axis": "axial"}
        assert "no voxel geometry" in entry["notes"] and "not written yet" not in entry["notes"]
    assert "intensity" not in ENTRIES["organamnist"]


@pytest.mark.parametrize("flag,size", [("organmnist3d", 28), ("vesselmnist3d", 64)])
def test_3d_read_items_and_streamed_volumes(tmp_path, flag, size):
    fake = make_medmnist(tmp_path, flag, size=size, counts=(4, 2, 2))
    entry = get_dataset(flag)
    items = adapter.read_items(tmp_path, entry, {"size": size})
    assert items["item_id"].tolist() == [f"{s}_{i:06d}" for s, n in (("train", 4), ("val", 2), ("test", 2))
                                         for i in range(n)]
    assert (items["source_file"] == fake["name"]).all()
    volumes = list(adapter.iter_volumes(tmp_path, items.iloc[::-1], entry, VOLUME_SETTINGS))
    assert [index for index, _ in volumes] == items.index[::-1].tolist()
    for index, volume in volumes:
        split, row = items.at[index, "item_id"].split("_")
        voxels = fake["arrays"][f"{split}_images"][int(row)]  # (D, H, W), D axial
        assert volume.data.dtype == np.float32 and volume.data.shape == (size,) * 3
        # canonical RAS+: x runs against the columns, y against the rows, z along D
        np.testing.assert_array_equal(volume.data, voxels.transpose(2, 1, 0)[::-1, ::-1] / np.float32(255))
        np.testing.assert_array_equal(volume.affine, np.eye(4))
        assert volume.spacing == (1.0, 1.0, 1.0) and volume.meta["n_nonfinite"] == 0
        assert volume.meta["original_axcodes"] == ["S", "P", "L"]
        assert volume.meta["source"] == f"{fake['name']}: array '{split}_images'[{int(row)}]"
        json.dumps(volume.meta)


def test_3d_preprocess_slices_are_medmnist_frames(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    fake = make_medmnist(raw, "organmnist3d", size=28, counts=(10, 10, 10))
    write_manifest(raw)
    options = resolve_options("organmnist3d", {"size": 28, "preprocess": {"size": 28}})
    settings = preprocess_settings("organmnist3d", VOLUME_SETTINGS, options)
    spec = preprocess_dataset("organmnist3d", get_dataset("organmnist3d"), raw, raw / "manifest.tsv", out, settings,
                              options)
    assert spec["size"] == 28 and spec["slice_axis"] == "axial" and spec["intensity"]["method"] == "none"
    items = pd.read_parquet(out / "items.parquet")
    for split in ("train", "val", "test"):
        array = np.load(out / f"{split}.npy")
        volumes = fake["arrays"][f"{split}_images"]
        assert array.shape == (10 * 28, 1, 28, 28) and array.dtype == np.uint8
        np.testing.assert_array_equal(array[:, 0], volumes.reshape(-1, 28, 28))  # values and layout kept
        part = items[items["split"] == split].sort_values("row")
        assert part["item_id"].tolist() == [f"{split}_{i:06d}" for i in range(10)]
        assert part["slice_start"].tolist() == list(range(0, 280, 28))
        assert part["slice_stop"].tolist() == list(range(28, 281, 28))
        assert set(part["spacing"]) == {"1x1x1"} and set(part["original_axcodes"]) == {"SPL"}


def test_3d_preprocess_defaults_upsample_28px_slices_to_64(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    fake = make_medmnist(raw, "synapsemnist3d", size=28, counts=(2, 1, 1))
    write_manifest(raw)
    options = resolve_options("synapsemnist3d", {})
    settings = preprocess_settings("synapsemnist3d", VOLUME_SETTINGS, options)
    spec = preprocess_dataset("synapsemnist3d", get_dataset("synapsemnist3d"), raw, raw / "manifest.tsv", out,
                              settings, options)
    assert spec["size"] == 64 and spec["intensity"]["method"] == "none"
    array = np.load(out / "train.npy")
    assert array.shape == (2 * 28, 1, 64, 64)
    frame = fake["arrays"]["train_images"][1, 5].astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(array[28 + 5], quantise(to_square(frame, 64, "pad")))


def test_truncated_volume_is_an_image_error(tmp_path):
    raw = tmp_path / "raw"
    make_medmnist(raw, "adrenalmnist3d", size=28, counts=(4, 1, 1))
    path = raw / "adrenalmnist3d.npz"
    with zipfile.ZipFile(path) as source:
        members = {name: source.read(name) for name in source.namelist()}
    members["train_images.npy"] = members["train_images.npy"][:-(28 ** 3 + 100)]  # row 2 cut short, row 3 gone
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, blob in members.items():
            target.writestr(name, blob)
    write_manifest(raw)
    entry = get_dataset("adrenalmnist3d")
    items = adapter.read_items(raw, entry, {"size": 28})  # the header alone still promises 4 volumes
    results = [r for _, r in adapter.iter_volumes(raw, items[items["split"] == "train"], entry, VOLUME_SETTINGS)]
    assert [isinstance(r, ImageReadError) for r in results] == [False, False, True, True]
    assert "adrenalmnist3d.npz: array 'train_images'[2]" in str(results[2]) and "truncated" in str(results[2])

    settings = {**VOLUME_SETTINGS, "on_error": "skip"}
    spec = preprocess_dataset("adrenalmnist3d", entry, raw, raw / "manifest.tsv", tmp_path / "out", settings, {})
    assert spec["counts"]["train"] == {"total": 4, "ok": 2}
    assert np.load(tmp_path / "out" / "train.npy").shape == (2 * 28, 1, 28, 28)
    with pytest.raises(ImageReadError, match=r"adrenalmnist3d\.npz: array 'train_images'\[2\]"):
        preprocess_dataset("adrenalmnist3d", entry, raw, raw / "manifest.tsv", tmp_path / "out2", VOLUME_SETTINGS,
                           {})


def test_missing_key_names_file_and_key(tmp_path):
    fake = make_medmnist(tmp_path, "breastmnist")
    arrays = {k: v for k, v in fake["arrays"].items() if k != "val_labels"}
    np.savez_compressed(fake["path"], **arrays)
    with pytest.raises(ValueError, match=r"breastmnist\.npz: no array 'val_labels'"):
        adapter.read_items(tmp_path, get_dataset("breastmnist"), {})


def test_malformed_arrays_name_file_and_problem(tmp_path):
    fake = make_medmnist(tmp_path, "octmnist")
    entry = get_dataset("octmnist")
    bad_labels = {**fake["arrays"], "test_labels": np.full((6, 1), 4, dtype=np.uint8)}  # 4 classes: 0..3
    np.savez_compressed(fake["path"], **bad_labels)
    with pytest.raises(ValueError, match=r"octmnist\.npz: array 'test_labels': label value\(s\) \[4\] outside 0..3"):
        adapter.read_items(tmp_path, entry, {})
    wrong_size = {**fake["arrays"], "train_images": np.zeros((12, 64, 64), dtype=np.uint8)}
    np.savez_compressed(fake["path"], **wrong_size)
    with pytest.raises(ValueError, match=r"'train_images': expected uint8 images of shape \(N, 28, 28\)"):
        adapter.read_items(tmp_path, entry, {})
    fake["path"].write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"octmnist\.npz: not a readable \.npz"):
        adapter.read_items(tmp_path, entry, {})
    fake["path"].unlink()
    with pytest.raises(FileNotFoundError, match=r"octmnist\.npz: MedMNIST file not found"):
        adapter.read_items(tmp_path, entry, {})


def test_truncated_images_member_is_an_image_error(tmp_path):
    raw = tmp_path / "raw"
    fake = make_medmnist(raw, "pneumoniamnist", counts=(8, 2, 2))
    # rewrite train_images with a header promising 8 rows but the bytes of only 5
    with zipfile.ZipFile(fake["path"]) as source:
        members = {name: source.read(name) for name in source.namelist()}
    data = members["train_images.npy"]
    members["train_images.npy"] = data[:len(data) - 3 * 28 * 28]
    with zipfile.ZipFile(fake["path"], "w", zipfile.ZIP_DEFLATED) as target:
        for name, blob in members.items():
            target.writestr(name, blob)
    write_manifest(raw)
    entry = get_dataset("pneumoniamnist")
    items = adapter.read_items(raw, entry, {})
    results = list(adapter.iter_images(raw, items[items["split"] == "train"], entry, GLOBAL_SETTINGS))
    errors = [r for _, r in results if isinstance(r, ImageReadError)]
    assert len(errors) == 3 and all("pneumoniamnist.npz: array 'train_images'" in str(e) for e in errors)
    assert "truncated" in str(errors[0])

    settings = preprocess_settings("pneumoniamnist", GLOBAL_SETTINGS, {})
    with pytest.raises(ImageReadError, match=r"pneumoniamnist\.npz: array 'train_images'\[5\]"):
        preprocess_dataset("pneumoniamnist", entry, raw, raw / "manifest.tsv", tmp_path / "out", settings, {})
    spec = preprocess_dataset("pneumoniamnist", entry, raw, raw / "manifest.tsv", tmp_path / "out",
                              {**settings, "on_error": "skip"}, {})
    assert spec["counts"]["train"] == {"total": 8, "ok": 5}
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "train.npy")[:, 0], fake["arrays"]["train_images"][:5])
