"""NIH ChestX-ray14, Montgomery County and Kvasir-Capsule: small fakes in the real download layouts, fetched by the
real http source from a local server, then through read_items, iter_images and preprocess_dataset."""

from __future__ import annotations

import copy
import io
import logging
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_datasets import make_kvasir_capsule, make_montgomery, make_nih
from http_server import FileServer
from PIL import Image as PILImage

from medprobe.datasets.adapters import LayoutError, image_folder, montgomery, nih
from medprobe.datasets.registry import get_dataset
from medprobe.download import fetch_http, write_manifest
from medprobe.io.images import ImageReadError
from medprobe.preprocess import preprocess_dataset
from medprobe.splits import SplitError

SETTINGS = {"size": 16, "resize_policy": "pad", "voi_fallback": "percentile", "percentiles": [0.5, 99.5],
            "on_error": "fail"}
MAKERS = {"nih_chestxray14": make_nih, "montgomery": make_montgomery, "kvasir_capsule": make_kvasir_capsule}


def fetched(tmp_path_factory, dataset: str) -> tuple[Path, dict]:
    """The fake's files served over HTTP and fetched by the entry's own file list (checksums swapped for the
    fake's), so file names, extraction and placement are the real download's."""
    www = tmp_path_factory.mktemp(f"{dataset}_www")
    fake = MAKERS[dataset](www)
    entry = copy.deepcopy(get_dataset(dataset))
    for file in entry["source"]["files"]:
        for algorithm in ("sha256", "md5"):
            if algorithm in file:
                file[algorithm] = fake["files"][file["name"]][algorithm]
    raw = tmp_path_factory.mktemp(dataset) / "raw"
    with FileServer(www) as server:
        fetch_http(entry, raw, {"mirror": server.base_url, "allow_unpinned": True}, www.parent / f"{dataset}_cache")
    return raw, fake


@pytest.fixture(scope="module")
def nih_raw(tmp_path_factory):
    return fetched(tmp_path_factory, "nih_chestxray14")


@pytest.fixture(scope="module")
def montgomery_raw(tmp_path_factory):
    return fetched(tmp_path_factory, "montgomery")


@pytest.fixture(scope="module")
def kvasir_raw(tmp_path_factory):
    return fetched(tmp_path_factory, "kvasir_capsule")


def copy_of(raw: Path, tmp_path: Path) -> Path:
    return shutil.copytree(raw, tmp_path / "raw")


def run(dataset: str, raw: Path, out: Path, **settings) -> tuple[dict, pd.DataFrame]:
    spec = preprocess_dataset(dataset, get_dataset(dataset), raw, raw / "manifest.tsv", out,
                              {**SETTINGS, **settings}, {})
    return spec, pd.read_parquet(out / "items.parquet")


# ---- NIH ChestX-ray14 ------------------------------------------------------------------------------------------

def test_nih_labels_lists_and_arrays(nih_raw, tmp_path):
    raw, fake = nih_raw
    entry = get_dataset("nih_chestxray14")
    spec, items = run("nih_chestxray14", raw, tmp_path / "out")
    truth = fake["table"].set_index(fake["table"]["Image Index"].str.removesuffix(".png"))
    assert sorted(items["item_id"]) == sorted(truth.index)
    labels = items.set_index("item_id")
    for item_id, row in truth.iterrows():
        findings = set(row["Finding Labels"].split("|"))
        for label in entry["tasks"]["findings14"]["labels"]:
            assert labels.at[item_id, f"label_{label}"] == int(label in findings)
        assert labels.at[item_id, "label_No Finding"] == int(findings == {"No Finding"})
        assert labels.at[item_id, "label_No Finding"] == 1 - labels.loc[
            item_id, [f"label_{lab}" for lab in entry["tasks"]["findings14"]["labels"]]].max()
        assert labels.at[item_id, "patient_id"] == row["Patient ID"]
    # The official lists are respected exactly: test is test_list.txt, train + val is train_val_list.txt.
    assert sorted(items.loc[items["split"] == "test", "source_file"]) == sorted(f"images/{n}" for n in fake["test"])
    assert sorted(items.loc[items["split"] != "test", "source_file"]) == sorted(
        f"images/{n}" for n in fake["trainval"])
    assert (items["split"] == "val").any() and items.groupby("patient_id")["split"].nunique().max() == 1
    for split in ("train", "val", "test"):
        array = np.load(tmp_path / "out" / f"{split}.npy")
        assert array.shape == (spec["counts"][split]["total"], 1, 16, 16) and array.dtype == np.uint8
    assert set(items["mode"]) == {"L", "RGBA"}


def test_nih_iter_images_match_the_pngs(nih_raw):
    raw, _ = nih_raw
    entry = get_dataset("nih_chestxray14")
    items = nih.read_items(raw, entry, {})
    for index, image in nih.iter_images(raw, items.head(3), entry, SETTINGS):
        expected = np.asarray(PILImage.open(raw / items.at[index, "source_file"]).convert("L")) / 255.0
        np.testing.assert_allclose(image.pixels, expected, atol=1e-6)


def test_nih_png_that_is_not_an_image_names_it(nih_raw, tmp_path):
    raw = copy_of(nih_raw[0], tmp_path)
    bad = sorted((raw / "images").glob("*.png"))[5]
    bad.write_bytes(b"this is not a PNG")
    write_manifest(raw)
    with pytest.raises(ImageReadError, match=f"{bad.name}: not a readable image"):
        run("nih_chestxray14", raw, tmp_path / "out")


def test_nih_image_in_no_split_list_names_it(nih_raw, tmp_path):
    raw = copy_of(nih_raw[0], tmp_path)
    test_list = (raw / "test_list.txt").read_text().split()
    (raw / "test_list.txt").write_text("\n".join(test_list[1:]) + "\n")
    write_manifest(raw)
    with pytest.raises(SplitError, match=f"1 item\\(s\\) are in no split list .* e.g. \\['images/{test_list[0]}'\\]"):
        run("nih_chestxray14", raw, tmp_path / "out")


# ---- Montgomery County ----------------------------------------------------------------------------------------

def test_montgomery_labels_masks_and_split(montgomery_raw, tmp_path):
    raw, fake = montgomery_raw
    spec, items = run("montgomery", raw, tmp_path / "out")
    assert dict(zip(items["item_id"], items["label_tb"])) == fake["labels"]
    assert (items["patient_id"] == items["item_id"]).all()
    for row in items.itertuples():
        assert row.mask_file == f"MontgomerySet/ManualMask/leftMask/{row.item_id}.png"
        assert row.mask_right_file == f"MontgomerySet/ManualMask/rightMask/{row.item_id}.png"
        assert (raw / row.mask_file).is_file() and (raw / row.mask_right_file).is_file()
        assert (row.rows, row.cols) == fake["shapes"][row.item_id]
    assert set(items["pixel_spacing"]) == {"0.0875x0.0875"} and set(items["voi_source"]) == {"percentile"}
    # 70/15/15 per stratum: 8 normal -> 6/1/1, 6 TB -> 4/1/1
    for split, (normal, tb) in {"train": (6, 4), "val": (1, 1), "test": (1, 1)}.items():
        part = items[items["split"] == split]
        assert ((part["label_tb"] == 0).sum(), (part["label_tb"] == 1).sum()) == (normal, tb)
        assert spec["counts"][split] == {"total": normal + tb, "ok": normal + tb}


def test_montgomery_12_bit_pngs_are_windowed_not_squeezed(montgomery_raw):
    raw, _ = montgomery_raw
    entry = get_dataset("montgomery")
    items = montgomery.read_items(raw, entry, {})
    for _, image in montgomery.iter_images(raw, items, entry, SETTINGS):
        assert image.pixels.dtype == np.float32 and image.pixels.min() == 0.0 and image.pixels.max() == 1.0
        assert image.meta["mode"].startswith("I")


def test_montgomery_8_bit_png_is_read_as_stored(tmp_path):
    path = tmp_path / "MCUCXR_0001_0.png"
    PILImage.fromarray(np.array([[0, 51], [102, 255]], dtype=np.uint8)).save(path)
    image = montgomery.read_radiograph(path, "percentile", (0.5, 99.5))
    np.testing.assert_allclose(image.pixels, [[0, 0.2], [0.4, 1.0]], atol=1e-6)


def test_montgomery_missing_mask_is_named(montgomery_raw, tmp_path):
    raw = copy_of(montgomery_raw[0], tmp_path)
    victim = sorted((raw / "MontgomerySet/ManualMask/rightMask").glob("*.png"))[0]
    victim.unlink()
    with pytest.raises(ValueError, match=f"1 lung mask\\(s\\) missing, e.g. \\['MontgomerySet/ManualMask/rightMask/"
                                         f"{victim.name}'\\]"):
        montgomery.read_items(raw, get_dataset("montgomery"), {})


def test_montgomery_corrupt_png_names_it(montgomery_raw, tmp_path):
    raw = copy_of(montgomery_raw[0], tmp_path)
    victim = sorted((raw / "MontgomerySet/CXR_png").glob("*.png"))[2]
    victim.write_bytes(victim.read_bytes()[:60])
    write_manifest(raw)
    with pytest.raises(ImageReadError, match=f"{victim.name}: not a readable image"):
        run("montgomery", raw, tmp_path / "out")


def test_montgomery_without_its_folder_says_what_is_expected(tmp_path):
    with pytest.raises(LayoutError, match="MontgomerySet/CXR_png/MCUCXR_<nnnn>_<0\\|1>.png"):
        montgomery.read_items(tmp_path / "nothing", get_dataset("montgomery"), {})


# ---- Kvasir-Capsule -------------------------------------------------------------------------------------------

def test_kvasir_classes_official_folds_and_rgb_arrays(kvasir_raw, tmp_path, caplog):
    raw, fake = kvasir_raw
    entry = get_dataset("kvasir_capsule")
    classes = entry["labels"]["classes"]
    with caplog.at_level(logging.WARNING, logger="medprobe.datasets.adapters.image_folder"):
        spec, items = run("kvasir_capsule", raw, tmp_path / "out")
    images = fake["images"]
    used = images[images["archive"].isin(list(classes)) & ~images["name"].isin(fake["multi"])]
    assert sorted(items["item_id"]) == sorted(used["name"].str.removesuffix(".jpg"))
    truth = used.set_index(used["name"].str.removesuffix(".jpg"))
    onehot = items.set_index("item_id")[[f"label_{label}" for label in classes.values()]]
    assert (onehot.sum(axis=1) == 1).all()
    for item_id, row in truth.iterrows():
        assert onehot.at[item_id, f"label_{classes[row['archive']]}"] == 1
        assert items.set_index("item_id").at[item_id, "patient_id"] == row["video"]
    # Official fold 1 is test, except the planted frame of a fold-0 video, which follows its video.
    moved = fake["moved"].removesuffix(".jpg")
    test = set(truth.index[truth["fold"] == 1]) - {moved}
    assert set(items.loc[items["split"] == "test", "item_id"]) == test
    assert items.set_index("item_id").loc[moved, ["split", "official_split"]].tolist()[1] == "test"
    assert items.set_index("item_id").at[moved, "split"] in ("train", "val")
    assert (items["split"] == "val").any() and items.groupby("patient_id")["split"].nunique().max() == 1
    assert "1 image(s) of 1 patient(s) listed in more than one split file moved" in caplog.text
    # Dropped classes and multi-class files are counted and logged, never silently lost.
    assert "'Ampulla of Vater': 2, 'Blood - hematin': 2, 'Polyp': 3, 'in more than one class folder': 2" in caplog.text
    array = np.load(tmp_path / "out" / "test.npy")
    assert array.shape == (len(test), 3, 16, 16) and spec["channels"] == 3
    assert set(items["mode"]) == {"RGB"}


def test_kvasir_excluded_counts_are_recorded(kvasir_raw):
    raw, _ = kvasir_raw
    items = image_folder.read_items(raw, get_dataset("kvasir_capsule"), {})
    assert items.attrs["excluded"] == {"Ampulla of Vater": 2, "Blood - hematin": 2, "Polyp": 3,
                                       "in more than one class folder": 2}
    assert set(items["source_file"].str.rsplit("/", n=1).str[1]) == {
        f"{folder}.tar.gz" for folder in get_dataset("kvasir_capsule")["labels"]["classes"]}


def test_kvasir_images_come_out_of_the_archives_in_item_order(kvasir_raw):
    raw, _ = kvasir_raw
    entry = get_dataset("kvasir_capsule")
    items = image_folder.read_items(raw, entry, {}).sample(frac=1, random_state=0).head(20)
    decoded = list(image_folder.iter_images(raw, items, entry, SETTINGS))
    assert [index for index, _ in decoded] == items.index.tolist()
    for (index, image), member, archive in zip(decoded, items["member"], items["source_file"]):
        with tarfile.open(raw / archive) as tar:
            expected = np.asarray(PILImage.open(tar.extractfile(member)).convert("RGB")) / 255.0
        assert image.pixels.shape == (16, 16, 3)
        np.testing.assert_allclose(image.pixels, expected, atol=1e-6)


def test_kvasir_corrupt_jpeg_in_an_archive_names_archive_and_member(kvasir_raw, tmp_path):
    raw = copy_of(kvasir_raw[0], tmp_path)
    archive = raw / "labelled_images" / "ulcer.tar.gz"
    with tarfile.open(archive) as tar:
        members = {info.name: (info, tar.extractfile(info).read() if info.isfile() else None) for info in tar}
    victim = sorted(name for name in members if name.endswith(".jpg"))[0]
    with tarfile.open(archive, "w:gz") as tar:
        for name, (info, data) in members.items():
            if name == victim:
                data = b"\xff\xd8 truncated"
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    write_manifest(raw)
    with pytest.raises(ImageReadError, match=f"ulcer.tar.gz:{victim}: not a readable image"):
        run("kvasir_capsule", raw, tmp_path / "out")


def test_kvasir_split_file_disagreeing_on_a_class_names_the_file(kvasir_raw, tmp_path):
    raw = copy_of(kvasir_raw[0], tmp_path)
    split = pd.read_csv(raw / "official_splits/split_1.csv", dtype=str)
    name = split.at[0, "filename"]
    split.loc[0, "label"] = "Ulcer" if split.at[0, "label"] != "Ulcer" else "Erosion"
    split.to_csv(raw / "official_splits/split_1.csv", index=False)
    with pytest.raises(ValueError, match=f"{name} is '{split.at[0, 'label']}' in official_splits/split_1.csv"):
        image_folder.read_items(raw, get_dataset("kvasir_capsule"), {})


def test_kvasir_unknown_class_folder_is_refused(kvasir_raw, tmp_path):
    raw = copy_of(kvasir_raw[0], tmp_path)
    shutil.copy(raw / "labelled_images/ulcer.tar.gz", raw / "labelled_images/ulcers_extra.tar.gz")
    with pytest.raises(ValueError, match=r"class folder\(s\) \['ulcers_extra'\] are neither"):
        image_folder.read_items(raw, get_dataset("kvasir_capsule"), {})


def test_kvasir_missing_archive_says_what_is_expected(kvasir_raw, tmp_path):
    raw = copy_of(kvasir_raw[0], tmp_path)
    (raw / "labelled_images/erythema.tar.gz").unlink()
    with pytest.raises(LayoutError, match="missing labelled_images/erythema.tar.gz. Expected layout:\n"
                                          "labelled_images/<class folder>.tar.gz"):
        image_folder.read_items(raw, get_dataset("kvasir_capsule"), {})


def test_image_folder_plain_class_folders(tmp_path):
    """The same adapter on unpacked class folders, without split files: items only, split left to the policy."""
    entry = {"title": "plain", "channels": 3, "tasks": {"kind": {"type": "multiclass", "labels": ["Cat", "Dog"]}},
             "source": {"kind": "local", "layout": "images/<cats|dogs|birds>/<name>.png"},
             "labels": {"prefix": "images", "extensions": [".png"], "classes": {"cats": "Cat", "dogs": "Dog"},
                        "excluded": {"birds": "Bird"}}}
    for folder, names in {"cats": ["a", "b"], "dogs": ["c", "sub/d"], "birds": ["e"]}.items():
        for name in names:
            path = tmp_path / "images" / folder / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            PILImage.fromarray(np.full((4, 4, 3), 9, np.uint8)).save(path)
    (tmp_path / "images" / "cats" / "Thumbs.db").write_bytes(b"x")
    items = image_folder.read_items(tmp_path, entry, {})
    assert items[["item_id", "source_file", "split", "label_Cat", "label_Dog"]].values.tolist() == [
        ["a", "images/cats/a.png", "", 1, 0], ["b", "images/cats/b.png", "", 1, 0],
        ["c", "images/dogs/c.png", "", 0, 1], ["d", "images/dogs/sub/d.png", "", 0, 1]]
    assert items.attrs["excluded"] == {"Bird": 1, "in more than one class folder": 0}
    decoded = dict(image_folder.iter_images(tmp_path, items, entry, SETTINGS))
    assert decoded[0].pixels.shape == (4, 4, 3)
    shutil.rmtree(tmp_path / "images" / "dogs")
    with pytest.raises(LayoutError, match="missing images/dogs. Expected layout:\nimages/<cats\\|dogs\\|birds>"):
        image_folder.check_layout(tmp_path, entry, {})
