"""Whole slides through the real DAG: demo_wsi tiled, tile features, slide probes, QC and attention figures."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, copy_workflow, snakemake


@pytest.fixture(scope="module")
def slides_run(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("slides_run"))
    shutil.copy2(REPO / "tests" / "configs" / "tiny_slides.yaml", workdir / "config" / "tiny_slides.yaml")
    snakemake(workdir, "--configfile", "config/tiny_slides.yaml")
    return workdir


def test_slide_probes_have_metrics_rows_per_seed(slides_run):
    metrics = pd.read_csv(slides_run / "results" / "metrics.csv")
    wsi = metrics[(metrics["dataset"] == "demo_wsi") & (metrics["metric"] == "auroc")]
    assert set(wsi["task"]) == {"tumor", "control"}
    assert set(zip(wsi["probe"], wsi["seed"])) == {("logreg", 0), ("mil", 0), ("mil", 1)}
    assert set(wsi["backbone"]) == {"vit_tiny_random", "pixels"}
    assert wsi["provenance_id"].notna().all() and (wsi["n_evaluated"] > 0).all()


def test_transfer_set_is_scored_by_probes_trained_on_its_source(slides_run):
    metrics = pd.read_csv(slides_run / "results" / "metrics.csv")
    other = metrics[(metrics["dataset"] == "demo_wsi_transfer") & (metrics["metric"] == "auroc")]
    items = pd.read_parquet(slides_run / "data" / "processed" / "demo_wsi_transfer" / "items.parquet")
    assert set(other["probe"]) == {"logreg", "mil"}
    assert (other["n_total"] == (items["split"] == "test").sum()).all()
    record = json.loads((slides_run / "results" / "probes" / "demo_wsi_transfer" / "pixels" / "64" / "logreg"
                         / "seed0" / "provenance.json").read_text())
    text = json.dumps(record)
    assert "results/features/demo_wsi/pixels/64" in text and "extract_features_train" in text
    scores = pd.read_parquet(slides_run / "results" / "probes" / "demo_wsi_transfer" / "pixels" / "64" / "logreg"
                             / "seed0" / "predictions.parquet")
    assert set(scores["item_id"]) == set(items.loc[(items["split"] == "test") & (items["status"] == "ok"), "item_id"])


def test_tiles_are_recorded_with_their_plan_and_skips_counted(slides_run):
    processed = slides_run / "data" / "processed" / "demo_wsi"
    items = pd.read_parquet(processed / "items.parquet")
    spec = json.loads((processed / "spec.json").read_text())
    assert (items["status"] == "skipped: no tissue").sum() == spec["skipped_no_tissue"] == 1
    assert spec["tiling"]["target_mpp"] == 1.0 and spec["tiling"]["tile_size"] == 224
    ok = items[items["status"] == "ok"]
    assert set(ok["mpp_source"]) == {"openslide.mpp-x/y", "config fallback_mpp"}
    assert sorted(ok["base_mpp"].unique()) == [0.25, 0.5]
    for split in ("train", "val", "test"):
        tiles = np.load(processed / f"{split}.npy")
        part = ok[ok["split"] == split].sort_values("row")
        assert part["tile_start"].iloc[0] == 0 and part["tile_stop"].iloc[-1] == len(tiles)
        assert (tiles["tissue_fraction"] >= 0.5).all()
        features = np.load(slides_run / "results" / "features" / "demo_wsi" / "pixels" / "64" / f"{split}.npy",
                           mmap_mode="r")
        assert len(features) == len(tiles)  # one feature row per tile, slide blocks in item order


def test_qc_thumbnails_and_attention_heatmaps_are_in_the_report(slides_run):
    qc = sorted((slides_run / "results" / "figures" / "tiles_demo_wsi").glob("*.png"))
    attention = sorted((slides_run / "results" / "figures" / "attention_demo_wsi").glob("*.png"))
    assert len(qc) == 3 and len(attention) == 3
    weights = pd.read_parquet(slides_run / "results" / "probes" / "demo_wsi" / "vit_tiny_random" / "64" / "mil"
                              / "seed0" / "attention.parquet")
    sums = weights.groupby(["task", "item_id"])["weight"].sum()
    np.testing.assert_allclose(sums, 1.0, rtol=1e-5)
    snakemake(slides_run, "--configfile", "config/tiny_slides.yaml", "--report", "results/report.html")
    html = (slides_run / "results" / "report.html").read_text(errors="replace")
    assert "tiles_demo_wsi" in html and "attention_demo_wsi" in html


def test_second_run_does_nothing(slides_run):
    result = snakemake(slides_run, "--configfile", "config/tiny_slides.yaml", "-n")
    assert "Nothing to be done" in result.stdout + result.stderr
