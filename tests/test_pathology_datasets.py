"""CAMELYON16, CAMELYON17 and BCNB in their real layouts: CAMELYON16's bucket served from 127.0.0.1 with tiny real
pyramidal TIFFs and fetched by the registry entry's own file list, the label tables read by the adapters, and the
splits made the way the pipeline makes them."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from http_server import FileServer
from PIL import Image
from test_dataset_registry import REQUIRED

from medprobe.cli import main
from medprobe.datasets import registry
from medprobe.datasets.adapters import LayoutError, bcnb, camelyon
from medprobe.datasets.entries import pathology
from medprobe.download import MANIFEST, fetch_dataset, read_manifest
from medprobe.io.slide_writer import write_pyramidal_tiff
from medprobe.io.slides import open_slide, slide_mpp
from medprobe.splits import apply_split_policy, check_patient_level

SLIDE_MPP = 0.25
# The fake test labels: these CAMELYON16 test slides are tumour, the others normal (test_114 included, as released).
C16_TEST_TUMOURS = {1, 2, 4, 8, 16, 21, 26, 40, 61, 73, 90, 99, 104, 114, 116, 121, 130}


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    """The entries as the registry serves them, whether or not registry.FAMILIES lists their module yet."""
    for name, entry in pathology.ENTRIES.items():
        monkeypatch.setitem(registry.DATASETS, name, entry)


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    """One tiny two-level pyramidal TIFF (pink tissue on glass, 0.25 µm/px) that every fake slide links to."""
    rgb = np.full((768, 1024, 3), 242, dtype=np.uint8)
    rgb[200:560, 300:760] = (205, 120, 175)
    path = tmp_path_factory.mktemp("slide") / "slide.tif"
    write_pyramidal_tiff(path, rgb, mpp=SLIDE_MPP)
    return path


def write_reference(path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{row}\n" for row in rows))


def c16_reference_rows(numbers, header: bool = False) -> list[str]:
    """reference.csv as the release words it: Test_NNN,Tumor|Normal,lesion type,lesion size (or with a header)."""
    rows = [f"Test_{n:03d},Tumor,Macro,Primary" if n in C16_TEST_TUMOURS else f"Test_{n:03d},Normal,None,"
            for n in numbers]
    if header:
        rows = ["image,class,type,size", *(row.replace(",", ".tif,", 1).lower() for row in rows)]
    return rows


@pytest.fixture(scope="module")
def c16_bucket(tmp_path_factory, slide):
    """CAMELYON16/ of the bucket: images/ (plus the two files the organisers removed, as an old mirror might keep
    them) and evaluation/reference.csv, which also still lists test_049."""
    www = tmp_path_factory.mktemp("www")
    images = www / "CAMELYON16" / "images"
    images.mkdir(parents=True)
    names = [f"normal_{n:03d}" for n in range(1, 161)] + [f"tumor_{n:03d}" for n in range(1, 112)]
    names += [f"test_{n:03d}" for n in range(1, 131)]
    for name in names:
        os.link(slide, images / f"{name}.tif")
    write_reference(www / "CAMELYON16" / "evaluation" / "reference.csv", c16_reference_rows(range(1, 131)))
    return www


def c16_read(root, **options) -> tuple[dict, dict, pd.DataFrame]:
    entry = registry.get_dataset("camelyon16")
    options = registry.resolve_options("camelyon16", options)
    return entry, options, camelyon.read_items(root, entry, options)


def test_camelyon16_download_gives_the_official_split(c16_bucket, tmp_path):
    raw = tmp_path / "raw"
    with FileServer(c16_bucket) as server:
        fetched = fetch_dataset("camelyon16", raw, {"mirror": server.url("CAMELYON16"), "allow_unpinned": True},
                                tmp_path / "downloads")
        requested = {hit.path for hit in server.hits()}
    assert "/CAMELYON16/images/test_049.tif" not in requested and "/CAMELYON16/images/normal_086.tif" not in requested
    assert len(requested) == len(fetched["files"]) == 400  # 399 slides and the reference table
    entry, options, items = c16_read(raw)
    assert (items["split"] == "trainval").sum() == 270 and (items["split"] == "test").sum() == 129
    assert not {"test_049", "normal_086"} & set(items["item_id"]) and "test_114" in set(items["item_id"])
    training = items[items["split"] == "trainval"]
    assert training["label_tumor"].sum() == 111 and (training["label_tumor"] == 0).sum() == 159
    test = items[items["split"] == "test"]
    assert set(test.loc[test["label_tumor"] == 1, "item_id"]) == {f"test_{n:03d}" for n in C16_TEST_TUMOURS}
    assert set(items["source_file"]) < set(read_manifest(raw / MANIFEST))
    assert (items["patient_id"] == items["item_id"]).all()

    split = apply_split_policy(items, entry["split"], raw, seed=0, source="camelyon16", stratify_labels=["tumor"])
    counts = split["split"].value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (216, 54, 129)
    val = split[split["split"] == "val"]
    assert val["label_tumor"].sum() == 22  # 111/270 of 54, to within one slide
    reseeded = apply_split_policy(items, entry["split"], raw, seed=1, source="camelyon16", stratify_labels=["tumor"])
    assert set(reseeded.loc[reseeded["split"] == "val", "item_id"]) != set(val["item_id"])

    with open_slide(raw / items["source_file"].iloc[0]) as opened:  # the bytes that arrived are a real slide
        assert opened.level_count == 2 and slide_mpp(opened, "downloaded slide")[0] == pytest.approx(SLIDE_MPP)


def test_camelyon16_reference_table_with_a_header_and_its_errors(tmp_path):
    reference = tmp_path / "evaluation" / "reference.csv"
    write_reference(reference, c16_reference_rows(range(1, 131), header=True))
    _, _, items = c16_read(tmp_path)
    tumours = items.loc[(items["split"] == "test") & (items["label_tumor"] == 1), "item_id"]
    assert set(tumours) == {f"test_{n:03d}" for n in C16_TEST_TUMOURS}

    write_reference(reference, c16_reference_rows(n for n in range(1, 131) if n not in (7, 77)))
    with pytest.raises(ValueError, match=r"no row for 2 test slide\(s\), e.g. \['test_007', 'test_077'\]"):
        c16_read(tmp_path)
    write_reference(reference, [*c16_reference_rows(range(1, 131)), "Test_131,Suspicious,,"])
    with pytest.raises(ValueError, match=r"row 131 is not .*Test_131,Suspicious"):
        c16_read(tmp_path)
    write_reference(reference, [*c16_reference_rows(range(1, 131)), "tumor_005,Normal,,"])
    with pytest.raises(ValueError, match=r"training slide\(s\) \['tumor_005'\] contradicts"):
        c16_read(tmp_path)


def test_camelyon16_max_slides_is_a_seeded_stratified_subset_per_split(tmp_path):
    write_reference(tmp_path / "evaluation" / "reference.csv", c16_reference_rows(range(1, 131)))
    _, _, full = c16_read(tmp_path)
    for cap in (2, 7, 40):
        _, options, items = c16_read(tmp_path, max_slides=cap)
        for split, part in items.groupby("split"):
            assert len(part) == cap
            whole = full[full["split"] == split]
            share = whole["label_tumor"].mean()
            assert abs(part["label_tumor"].sum() - share * cap) <= 1 and part["label_tumor"].nunique() == 2
            assert set(part["item_id"]) <= set(whole["item_id"])
        assert camelyon.select_files(tmp_path, registry.get_dataset("camelyon16"), options) == \
            items["source_file"].tolist()
    same = c16_read(tmp_path, max_slides=7)[2]
    other = c16_read(tmp_path, max_slides=7, split_seed=3)[2]
    assert same.equals(c16_read(tmp_path, max_slides=7)[2]) and set(other["item_id"]) != set(same["item_id"])
    assert len(c16_read(tmp_path, max_slides=1000)[2]) == len(full) == 399
    with pytest.raises(ValueError, match="max_slides=0 must be a positive integer"):
        c16_read(tmp_path, max_slides=0)


def test_camelyon16_max_slides_downloads_only_the_chosen_slides(c16_bucket, tmp_path):
    raw, options = tmp_path / "raw", {"max_slides": 4, "allow_unpinned": True}
    with FileServer(c16_bucket) as server:
        fetch_dataset("camelyon16", raw, {**options, "mirror": server.url("CAMELYON16")}, tmp_path / "downloads")
        requested = {hit.path for hit in server.hits()}
    _, _, items = c16_read(raw, **options)
    assert len(items) == 8
    assert requested == {f"/CAMELYON16/{name}" for name in ["evaluation/reference.csv", *items["source_file"]]}
    assert set(read_manifest(raw / MANIFEST)) == {"evaluation/reference.csv", *items["source_file"]}


# ---- CAMELYON17 ------------------------------------------------------------------------------------------------

def c17_stage(patient: int, node: int) -> str:
    """A fixed fake stage pattern: every centre has negative and positive patients, and some ITC-only slides."""
    if patient % 3 == 0:
        return "negative"
    return ("negative", "macro", "micro", "itc", "negative")[(patient + node) % 5]


def write_c17_stages(root, stage=c17_stage, center=lambda patient: patient // 20) -> None:
    """stages.csv as the bucket serves it: patient rows (pN stage) before each patient's five slide rows."""
    rows = ["patient,stage,center"]
    for patient in range(100):
        rows.append(f"patient_{patient:03d}.zip,pN1,{center(patient)}")
        rows += [f"patient_{patient:03d}_node_{node}.tif,{stage(patient, node)},{center(patient)}" for node in range(5)]
    root.mkdir(parents=True, exist_ok=True)
    (root / "stages.csv").write_text("\n".join(rows) + "\n")


def c17_read(root, **options) -> tuple[dict, pd.DataFrame]:
    entry = registry.get_dataset("camelyon17")
    return entry, camelyon.read_items(root, entry, registry.resolve_options("camelyon17", options))


def test_camelyon17_keeps_each_patients_nodes_together(tmp_path):
    write_c17_stages(tmp_path)
    entry, items = c17_read(tmp_path)
    assert len(items) == 500 and items["patient_id"].nunique() == 100
    assert (items.groupby("patient_id")["split"].nunique() == 1).all()
    assert (items["center"] == items["item_id"].str[8:11].astype(int) // 20).all()
    assert items.loc[items["stage"] == "itc", "label_tumor"].eq(1).all()
    assert (items["label_tumor"] == (items["stage"] != "negative")).all()
    split = apply_split_policy(items, entry["split"], tmp_path, seed=0, source="camelyon17",
                               stratify_labels=["tumor"])
    patients = split.groupby("patient_id")["split"].first().value_counts()
    assert (patients["train"], patients["val"], patients["test"]) == (70, 15, 15)
    for centre in range(5):  # stratified by centre: every centre has patients in every split
        assert set(split.loc[split["center"] == centre, "split"]) == {"train", "val", "test"}

    _, transfer = c17_read(tmp_path, role="transfer")
    assert (transfer["split"] == "test").all() and len(transfer) == 500
    _, unseen = c17_read(tmp_path, role="transfer", subset="unseen", itc="exclude")
    assert unseen["patient_id"].max() == "patient_069" and "itc" not in set(unseen["stage"])
    assert len(unseen) == 350 - sum(c17_stage(p, n) == "itc" for p in range(70) for n in range(5))
    _, seen = c17_read(tmp_path, subset="seen")
    assert seen["patient_id"].min() == "patient_070" and len(seen) == 150


def test_camelyon17_max_patients_and_table_errors(tmp_path):
    write_c17_stages(tmp_path)
    entry, items = c17_read(tmp_path, max_patients=10, role="transfer")
    assert items["patient_id"].nunique() == 10 and len(items) == 50 and set(items["center"]) == set(range(5))
    assert items.groupby("patient_id")["label_tumor"].max().nunique() == 2
    options = registry.resolve_options("camelyon17", {"max_patients": 10, "role": "transfer"})
    assert camelyon.select_files(tmp_path, entry, options) == items["source_file"].tolist()
    assert all(name.startswith("images/patient_") for name in items["source_file"])

    write_c17_stages(tmp_path, stage=lambda patient, node: "macro" if (patient, node) != (42, 3) else "pN2")
    with pytest.raises(ValueError, match=r"unknown stage\(s\) \['pn2'\]"):
        c17_read(tmp_path)
    write_c17_stages(tmp_path, center=lambda patient: patient // 25)
    with pytest.raises(ValueError, match=r"center column disagrees .* \['patient_020_node_0'"):
        c17_read(tmp_path)


# ---- BCNB ------------------------------------------------------------------------------------------------------

BCNB_PATIENTS = 40


def bcnb_clinical(n: int) -> pd.DataFrame:
    """The clinical table's columns and value spellings, with a label mix that varies by patient."""
    ids = np.arange(1, n + 1)

    def status(positive):
        return np.where(positive, "Positive", "Negative")

    ki67 = status(ids % 4 == 0)
    ki67[4] = ""  # a blank cell: a missing label
    return pd.DataFrame({
        "Patient ID": ids, "Age(years)": 40 + ids % 30, "Tumour Size(cm)": 1.0 + ids % 5 / 2,
        "Tumour Type": "Invasive ductal carcinoma", "ER": status(ids % 5 == 0), "PR": status(ids % 3 == 0),
        "HER2": status(ids % 4 != 0), "HER2 Expression": np.array(["0", "1+", "2+", "3+"])[ids % 4],
        "Histological grading": "2", "Surgical": "Breast-conserving surgery", "Ki67": ki67,
        "Molecular subtype": "Luminal A", "Number of lymph node metastases": ids % 4,
        "ALN status": np.array(["N0", "N+(1-2)", "N+(>2)", "N0"])[ids % 4]})


@pytest.fixture
def bcnb_release(tmp_path):
    pytest.importorskip("openpyxl", reason="reading BCNB's clinical .xlsx needs openpyxl")
    root = tmp_path / "BCNB"
    (root / "WSIs").mkdir(parents=True)
    clinical = bcnb_clinical(BCNB_PATIENTS)
    clinical.to_excel(root / "patient-clinical-data.xlsx", index=False)
    for patient in clinical["Patient ID"]:
        Image.new("RGB", (64, 48), (230, 170, 200)).save(root / "WSIs" / f"{patient}.jpg", quality=90)
        (root / "WSIs" / f"{patient}.json").write_text(json.dumps({"positive": [], "negative": []}))
    lists = root / "dataset-splitting"
    lists.mkdir()
    for split, members in {"train": range(1, 25), "val": range(25, 33), "test": range(33, 41)}.items():
        (lists / f"{split}_id.txt").write_text("\n".join(map(str, members)))
    return root


def bcnb_read(root, **options) -> pd.DataFrame:
    entry = registry.get_dataset("bcnb")
    options = registry.resolve_options("bcnb", {"path": str(root), **options})
    bcnb.check_layout(root, entry, options)
    return bcnb.read_items(root, entry, options)


def test_bcnb_labels_and_cross_validation_folds(bcnb_release):
    entry = registry.get_dataset("bcnb")
    items = bcnb_read(bcnb_release)
    assert len(items) == BCNB_PATIENTS and (items["source_file"] == "WSIs/" + items["item_id"] + ".jpg").all()
    ids = items["item_id"].astype(int)
    assert (items["label_ALN_metastasis"] == (ids % 4).isin([1, 2])).all()
    assert (items["label_ER"] == (ids % 5 == 0)).all() and (items["label_HER2"] == (ids % 4 != 0)).all()
    assert items.loc[ids == 5, "label_Ki67"].item() == -1 and set(items["label_Ki67"]) == {-1, 0, 1}

    tests = []
    for fold in range(5):
        split = apply_split_policy(bcnb_read(bcnb_release, fold=fold), entry["split"], bcnb_release, seed=0,
                                   source="bcnb", stratify_labels=["ALN_metastasis"])
        counts = split["split"].value_counts()
        assert (counts["train"], counts["val"], counts["test"]) == (28, 4, 8)  # 7:1:2
        assert (split.loc[split["split"] == "test", "cv_fold"] == fold).all()
        tests.append(set(split.loc[split["split"] == "test", "patient_id"]))
    assert set().union(*tests) == set(items["patient_id"]) and sum(map(len, tests)) == BCNB_PATIENTS
    reseeded = bcnb_read(bcnb_release, split_seed=1)
    assert set(reseeded.loc[reseeded["split"] == "test", "item_id"]) != tests[0]

    official = bcnb_read(bcnb_release, protocol="official")
    check_patient_level(official, "bcnb")
    assert official["split"].value_counts().to_dict() == {"train": 24, "val": 8, "test": 8}


def test_bcnb_check_layout_names_every_missing_file(bcnb_release):
    entry = registry.get_dataset("bcnb")
    for patient in (3, 17, 40):
        (bcnb_release / "WSIs" / f"{patient}.jpg").unlink()
    with pytest.raises(LayoutError, match=r"missing WSIs/3.jpg, WSIs/17.jpg, WSIs/40.jpg\. Expected layout"):
        bcnb.check_layout(bcnb_release, entry, {})
    (bcnb_release / "dataset-splitting" / "val_id.txt").unlink()
    with pytest.raises(LayoutError, match=r"missing dataset-splitting/val_id.txt\."):
        bcnb.check_layout(bcnb_release, entry, {"protocol": "official"})
    with pytest.raises(LayoutError, match=r"patient-clinical-data.xlsx is in .*BCNB: set `path` to that folder"):
        bcnb.check_layout(bcnb_release.parent, entry, {})
    with pytest.raises(ValueError, match=r"(?s)not openly downloadable.*set the dataset option `path`.*WSIs/"):
        fetch_dataset("bcnb", bcnb_release.parent / "raw", {}, bcnb_release.parent / "downloads")


def test_bcnb_unknown_label_values_are_named(bcnb_release):
    clinical = bcnb_clinical(BCNB_PATIENTS)
    clinical.loc[6, "ER"] = "Weakly positive"
    clinical.to_excel(bcnb_release / "patient-clinical-data.xlsx", index=False)
    with pytest.raises(ValueError, match=r"column 'ER' holds \['Weakly positive'\]"):
        bcnb_read(bcnb_release)


# ---- registry ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(pathology.ENTRIES))
def test_entries_are_complete(name):
    """The registry test's checks; slide adapters list slides but read no pixels (the pipeline tiles them)."""
    entry = registry.get_dataset(name)
    assert REQUIRED <= set(entry) and entry["dimensionality"] == "wsi" and entry["channels"] == 3
    adapter = __import__(entry["adapter"], fromlist=["read_items"])
    assert callable(adapter.read_items)
    if entry["source"]["kind"] == "http":
        for file in entry["source"]["files"]:
            assert file["url"].startswith("https://") and file["url"].endswith(file["name"])
            assert file.get("sha256") or file.get("md5") or file.get("checksum_note")
        assert callable(adapter.select_files)
    else:
        assert entry["access"] == "account" and callable(adapter.check_layout) and entry["source"]["layout"].strip()
    assert all(task["type"] == "binary" and task["labels"] for task in entry["tasks"].values())
    registry.resolve_options(name, {})


def test_options_are_checked_and_listed(capsys):
    with pytest.raises(ValueError, match=r"fold=5 is not one of \[0, 1, 2, 3, 4\]"):
        registry.resolve_options("bcnb", {"fold": 5})
    with pytest.raises(ValueError, match=r"does not take option\(s\) \['max_slides'\]"):
        registry.resolve_options("camelyon17", {"max_slides": 3})
    assert main(["datasets", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert {name: (rows[name]["dimensionality"], rows[name]["source"]) for name in pathology.ENTRIES} == {
        "camelyon16": ("wsi", "http"), "camelyon17": ("wsi", "http"), "bcnb": ("wsi", "local")}
