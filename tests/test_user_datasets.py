"""Users' own datasets (base: user_table): the entry built from the declaration and files, splits, the skip policy,
spec files, `medprobe validate`, and the real DAG on X-rays, CT volumes, masks and slides."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

import user_data
from conftest import copy_workflow, snakemake
from medprobe.cli import main as cli
from medprobe.datasets.registry import dataset_entry, resolve_options
from medprobe.datasets.adapters import user_table
from medprobe.datasets.user_table import UserDatasetError
from medprobe.datasets.validate import TableValidationError


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("user_data")
    xray = user_data.xray_folder(root / "cxr", n_patients=60)
    user_data.ct_folder(root / "ct")
    user_data.slide_folder(root / "slides")
    lungs = user_data.lung_folder(root / "lungs")
    return {"root": root, "xray": xray, "lungs": lungs, "ct": root / "ct", "slides": root / "slides"}


def built(options):
    return dataset_entry("user_table", {k: v for k, v in options.items() if k != "base"})


def resolved(options):
    return resolve_options("user_table", {k: v for k, v in options.items() if k != "base"})


def items_for(options):
    """The adapter's item table, as preprocess reads it."""
    return user_table.read_items(Path(options["path"]), built(options), resolved(options))


def check(options):
    """The adapter's check at the download stage: every file read, every problem named (raises under fail)."""
    return user_table.check_layout(Path(options["path"]), built(options), resolved(options))


def test_entry_is_inferred_from_the_files(folders):
    xray = built(folders["xray"])
    assert (xray["dimensionality"], xray["modality"], xray["channels"]) == ("2d", "xray", 1)
    assert xray["tasks"] == {"findings": {"type": "multilabel", "labels": user_data.FINDINGS}}
    slides = built(user_data.slide_options(folders["slides"]))
    assert (slides["dimensionality"], slides["modality"], slides["channels"]) == ("wsi", "pathology", 3)
    assert slides["tasks"]["diagnosis"]["labels"] == ["tumour"]  # binary: the second declared class is positive
    organs = built(user_data.ct_segmentation(folders["ct"]))
    assert (organs["dimensionality"], organs["modality"]) == ("3d", "ct")
    lungs = built(folders["lungs"])
    assert (lungs["dimensionality"], lungs["modality"], lungs["channels"]) == ("2d", "unspecified", 1)


def test_a_nifti_volume_needs_its_modality_stated_and_dicom_series_say_it(folders):
    options = {k: v for k, v in user_data.ct_segmentation(folders["ct"]).items() if k != "modality"}
    with pytest.raises(UserDatasetError, match="state the dataset option `modality`"):
        built(options)
    cases = pd.read_parquet(folders["ct"] / "cases.parquet")
    series_first = pd.concat([cases[cases["path"].str.startswith("dicom")], cases])
    series_first.drop_duplicates("case").to_csv(folders["ct"] / "series_first.csv", index=False)
    assert built({**options, "table": "series_first.csv"})["modality"] == "ct"  # from the series' Modality tag


def test_rgb_pngs_with_multiclass_and_label_column_tables(tmp_path):
    for i in range(9):
        Image.fromarray(np.full((16, 16, 3), (20 * i, 30, 200 - 20 * i), np.uint8)).save(tmp_path / f"{i}.png")
    pd.DataFrame({"path": [f"{i}.png" for i in range(9)], "patient": list("abcdefghi"), "label": ["x", "y", "z"] * 3,
                  "split": ["train"] * 3 + ["val"] * 3 + ["test"] * 3, "red": ["1", "0", "1"] * 3,
                  "blue": ["0", "1", "1"] * 3}).to_csv(tmp_path / "t.csv", index=False)
    options = {"path": str(tmp_path), "table": "t.csv", "task": {"type": "multiclass", "classes": ["x", "y", "z"]}}
    entry = built(options)
    assert (entry["dimensionality"], entry["channels"], entry["modality"]) == ("2d", 3, "unspecified")
    one_hot = items_for(options)[["label_x", "label_y", "label_z"]].to_numpy()
    np.testing.assert_array_equal(one_hot, np.tile(np.eye(3), (3, 1)))
    columns = {**options, "columns": {"labels": ["red", "blue"]}, "task": {"name": "colours", "type": "multilabel"}}
    assert built(columns)["tasks"] == {"colours": {"type": "multilabel", "labels": ["red", "blue"]}}
    np.testing.assert_array_equal(items_for(columns)[["label_red", "label_blue"]], [[1, 0], [0, 1], [1, 1]] * 3)


def test_a_split_given_in_the_table_is_used_exactly(folders):
    cases = pd.read_parquet(folders["ct"] / "cases.parquet")
    items = items_for(user_data.ct_segmentation(folders["ct"]))
    assert dict(zip(items["item_id"], items["split"])) == dict(zip(cases["case"], cases["split"]))


def test_without_a_split_column_the_split_is_seeded_patient_level_and_stratified(folders):
    items = items_for(folders["xray"])
    again = items_for(folders["xray"])
    other = items_for({**folders["xray"], "split_seed": 1})
    assert items["split"].tolist() == again["split"].tolist()
    assert items["split"].tolist() != other["split"].tolist()
    assert (items.groupby("patient_id")["split"].nunique() == 1).all()
    shares = items.groupby("split")["patient_id"].nunique() / items["patient_id"].nunique()
    for split, share in {"train": 0.7, "val": 0.15, "test": 0.15}.items():
        assert abs(shares[split] - share) < 0.05
    for label in user_data.FINDINGS:  # every finding lands in every split
        assert (items.groupby("split")[f"label_{label}"].max() == 1).all()
    no_finding = pd.read_csv(folders["xray"]["path"] + "/findings.csv")["findings"] == "No Finding"
    assert (items.loc[no_finding.to_numpy(), [f"label_{f}" for f in user_data.FINDINGS]] == 0).all().all()


def bad_ct_table(ct):
    """Four rows a run must not read (all in test) and two it cannot place (one patient in two splits)."""
    (ct / "images" / "broken.nii.gz").write_bytes(b"not a volume at all")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(ct / "images" / "photo.png")
    cases = pd.read_parquet(ct / "cases.parquet")
    good = cases.iloc[0]
    extra = pd.DataFrame([
        {**good, "case": "lost", "path": "images/lost.nii.gz", "patient": "Q1", "split": "test"},
        {**good, "case": "broken", "path": "images/broken.nii.gz", "patient": "Q2", "split": "test"},
        {**good, "case": "maybe", "patient": "Q3", "lesion": "maybe", "split": "test"},
        {**good, "case": "photo", "path": "images/photo.png", "patient": "Q4", "split": "test"},
        {**good, "case": "leak_a", "patient": "Q5", "split": "train"},
        {**good, "case": "leak_b", "patient": "Q5", "split": "test"},
    ])
    table = pd.concat([cases, extra], ignore_index=True)
    table.to_csv(ct / "cases_bad.csv", index=False)
    return table


def ct_lesion_options(ct, **extra):
    return {"base": "user_table", "path": str(ct), "table": "cases_bad.csv", "modality": "ct",
            "columns": {"id": "case", "label": "lesion", "split": "split"},
            "task": {"name": "lesion", "type": "binary", "classes": ["none", "lesion"]}, **extra}


def test_fail_policy_names_every_bad_row_and_skip_counts_them(folders):
    table = bad_ct_table(folders["ct"])
    n_good = len(table) - 6
    with pytest.raises(TableValidationError) as failed:
        check(ct_lesion_options(folders["ct"]))
    message = str(failed.value)
    for row, reason in [(n_good + 2, "missing file"), (n_good + 3, "unreadable file"),
                        (n_good + 4, "not in the declared classes"), (n_good + 5, "a png file (2d) in a 3d dataset"),
                        (n_good + 6, "patient 'Q5' is in more than one split"),
                        (n_good + 7, "patient 'Q5' is in more than one split")]:
        line = next(line for line in message.splitlines() if f"cases_bad.csv row {row} " in line)
        assert reason in line, line
    assert check(ct_lesion_options(folders["ct"], on_invalid="skip"))["n_skipped"] == 6
    items = items_for(ct_lesion_options(folders["ct"], on_invalid="skip"))
    assert len(items) == len(table) - 2  # the two rows of the leaking patient have no split to be counted in
    skipped = items[items["skip_reason"] != ""]
    assert sorted(skipped["item_id"]) == ["broken", "lost", "maybe", "photo"]
    assert (skipped["split"] == "test").all() and (skipped["label_lesion"] == -1).all()
    assert items.attrs["validation"] | {"problems": None} == {
        "table": "cases_bad.csv", "n_rows": len(table), "n_ok": n_good, "n_skipped": 4, "n_unplaced": 2,
        "problems": None}


def test_spec_file_paths_are_relative_to_it_and_the_config_overrides_it(folders, tmp_path):
    spec = user_data.ct_classification_spec(folders["ct"])
    resolved = resolve_options("user_table", {"spec": str(spec), "split_seed": 3})
    assert resolved["path"] == str(folders["ct"]) and resolved["modality"] == "ct"
    assert resolve_options("user_table", {"spec": str(spec), "modality": "mri"})["modality"] == "mri"
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({"path": ".", "tabel": "x.csv"}))
    with pytest.raises(UserDatasetError, match="tabel"):
        resolve_options("user_table", {"spec": str(typo)})


def test_tables_in_every_format_and_unusable_tables(folders, tmp_path):
    cases = pd.read_parquet(folders["ct"] / "cases.parquet")
    cases.to_csv(folders["ct"] / "cases.tsv", sep="\t", index=False)
    options = {**user_data.ct_segmentation(folders["ct"]), "table": "cases.tsv"}
    assert items_for(options)["item_id"].tolist() == items_for(user_data.ct_segmentation(folders["ct"]))[
        "item_id"].tolist()
    with pytest.raises(UserDatasetError, match="nothing.csv does not exist"):
        built({**options, "table": "nothing.csv"})
    (folders["ct"] / "cases.xlsx").write_bytes(b"")
    with pytest.raises(UserDatasetError, match="expected .csv, .tsv or .parquet"):
        built({**options, "table": "cases.xlsx"})
    with pytest.raises(UserDatasetError, match="needs its `task`"):
        built({"path": str(folders["ct"]), "table": "cases.tsv"})


def test_medprobe_validate_prints_the_summary_and_exits_by_policy(folders, tmp_path, capsys):
    bad_ct_table(folders["ct"])
    config = {"datasets": {"lesions": ct_lesion_options(folders["ct"]), "demo_cxr": {}}, "backbones": ["pixels"],
              "resolutions": [32], "probes": {"logreg": {}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "cases_bad.csv: 22 row(s), 16 ok, 6 with problems" in out
    assert "a run stops here" in out and "registry dataset 'demo_cxr'" in out
    assert "modalities: dicom-series 2, nifti 14; dimensionality: 3d" in out
    config["datasets"]["lesions"]["on_invalid"] = "skip"
    path.write_text(yaml.safe_dump(config))
    assert cli(["validate", str(path)]) == 0
    assert "a run skips and counts 6 row(s)" in capsys.readouterr().out
    config["datasets"]["lesions"]["task"] = {"type": "binary", "classes": ["none"]}
    path.write_text(yaml.safe_dump(config))
    assert cli(["validate", str(path)]) == 2
    assert "exactly 2 classes" in capsys.readouterr().err


@pytest.fixture(scope="module")
def user_run(folders, tmp_path_factory):
    """Four datasets of four kinds, each in the user's own words, through the real DAG."""
    workdir = copy_workflow(tmp_path_factory.mktemp("user_run"))
    bad_ct_table(folders["ct"])
    slides = pd.read_csv(folders["slides"] / "slides.csv", dtype=str)
    lost = pd.DataFrame([{"slide": "slides/lost.svs", "patient": "PX", "diagnosis": "tumour"}])
    pd.concat([slides, lost]).to_csv(folders["slides"] / "slides_lost.csv", index=False)
    config = {
        "datasets": {
            "my_cxr": {**folders["xray"], "split_fractions": {"train": 0.6, "val": 0.2, "test": 0.2}},
            "my_ct": {"base": "user_table", "spec": str(user_data.ct_classification_spec(folders["ct"])),
                      "resolutions": [48]},
            "my_ct_skip": {**ct_lesion_options(folders["ct"], on_invalid="skip"), "resolutions": [48]},
            "my_organs": {**user_data.ct_segmentation(folders["ct"]), "resolutions": [48]},
            "my_slides": user_data.slide_options(folders["slides"], table="slides_lost.csv", on_invalid="skip"),
            "my_lungs": folders["lungs"],
        },
        "backbones": ["vit_tiny_random", "pixels"],
        "resolutions": [48],
        "probes": {"logreg": {"c_num": 5}, "mil": {"epochs": 3}, "seg_linear": {"epochs": 4}},
        "seeds": [0],
        "preprocess": {"size": 64, "target_mpp": 1.0, "tile_size": 224},
        "extract": {"batch_size": 16, "num_workers": 0},
        "evaluate": {"n_bootstrap": 50},
        "figures": {"slides": 2},
    }
    (workdir / "config" / "user.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake(workdir, "--configfile", "config/user.yaml")
    return workdir


def test_every_kind_gets_metrics_with_provenance(user_run):
    metrics = pd.read_csv(user_run / "results" / "metrics.csv")
    expected = {("my_cxr", "findings", "logreg"), ("my_ct", "lesion", "logreg"), ("my_ct", "lesion", "mil"),
                ("my_ct_skip", "lesion", "mil"), ("my_organs", "organs", "seg_linear"),
                ("my_slides", "diagnosis", "logreg"), ("my_slides", "diagnosis", "mil"),
                ("my_lungs", "lungs", "seg_linear")}
    assert expected <= set(zip(metrics["dataset"], metrics["task"], metrics["probe"]))
    assert set(metrics["backbone"]) == {"vit_tiny_random", "pixels"}
    assert metrics["provenance_id"].notna().all()
    for prov_id in metrics["provenance_id"].unique()[:3]:
        assert (user_run / "results" / "provenance" / f"{prov_id}.json").exists()
    figures = user_run / "results" / "figures"
    assert (figures / "heatmap.png").exists() and (figures / "overlays_my_organs.png").exists()
    assert (figures / "overlays_my_lungs.png").exists()
    assert len(list((figures / "attention_my_slides").glob("*.png"))) == 2


def test_skipped_rows_count_in_n_total_and_in_provenance(user_run):
    metrics = pd.read_csv(user_run / "results" / "metrics.csv")
    clean = metrics[metrics["dataset"] == "my_ct"]
    skipping = metrics[metrics["dataset"] == "my_ct_skip"]
    assert (clean["n_evaluated"] == clean["n_total"]).all()
    assert (skipping["n_total"] == clean["n_total"].iloc[0] + 4).all()  # the four unreadable or mislabelled rows
    assert (skipping["n_evaluated"] == clean["n_evaluated"].iloc[0]).all()
    processed = user_run / "data" / "processed" / "my_ct_skip"
    spec = json.loads((processed / "spec.json").read_text())
    assert (spec["validation"]["n_skipped"], spec["validation"]["n_unplaced"]) == (4, 2)
    record = json.loads((processed / "provenance.json").read_text())
    assert "cases_bad.csv row 18 (item lost, images/lost.nii.gz): missing file" in json.dumps(record)
    download = json.loads((user_run / "data" / "raw" / "my_ct_skip" / "provenance.json").read_text())
    assert len(json.dumps(download).split("more than one split")) == 3
    items = pd.read_parquet(processed / "items.parquet")
    assert items.loc[items["item_id"] == "broken", "status"].item().startswith("skipped: unreadable file")


def test_a_bad_row_stops_the_run_before_any_preprocessing(folders, tmp_path):
    workdir = copy_workflow(tmp_path)
    bad_ct_table(folders["ct"])
    config = {"datasets": {"lesions": ct_lesion_options(folders["ct"]), "my_slides": user_data.slide_options(
        folders["slides"])}, "backbones": ["pixels"], "resolutions": [48], "probes": {"logreg": {"c_num": 3}}}
    (workdir / "config" / "bad.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--configfile", "config/bad.yaml", check=False)
    assert result.returncode != 0
    log = (workdir / "logs" / "download" / "lesions.log").read_text()
    assert "6 problem(s)" in log and all(f"cases_bad.csv row {row} " in log for row in range(18, 24))
    assert not (workdir / "data" / "processed" / "lesions").exists()
    assert not (workdir / "results" / "features").exists()


def test_editing_the_table_reruns_the_dataset(user_run, folders):
    assert "Nothing to be done" in snakemake(user_run, "--configfile", "config/user.yaml", "-n").stdout
    table = folders["slides"] / "slides_lost.csv"
    table.write_text(table.read_text().replace("PX", "PY"))  # an edit (saving the same bytes again reruns nothing)
    result = snakemake(user_run, "--configfile", "config/user.yaml", "-n")
    assert "download" in result.stdout and "my_slides" in result.stdout
    spec = folders["ct"] / "dataset.yaml"
    spec.write_text(spec.read_text() + "split_fractions: {train: 0.6, val: 0.2, test: 0.2}\n")  # unused: a split column
    result = snakemake(user_run, "--configfile", "config/user.yaml", "-n")
    assert "dataset=my_ct\n" in result.stdout
