"""Volumes and segmentation through the real DAG: demo_ct (NIfTI and DICOM series) and demo_cxr_seg."""

import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import REPO, copy_workflow, snakemake


@pytest.fixture(scope="module")
def volumes_run(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("volumes_run"))
    shutil.copy2(REPO / "tests" / "configs" / "tiny_volumes.yaml", workdir / "config" / "tiny_volumes.yaml")
    snakemake(workdir, "--configfile", "config/tiny_volumes.yaml")
    return workdir


def test_metrics_have_3d_classification_and_segmentation_rows(volumes_run):
    metrics = pd.read_csv(volumes_run / "results" / "metrics.csv")
    ct = metrics[metrics["dataset"] == "demo_ct"]
    assert set(ct.loc[ct["task"] == "lesion", "probe"]) == {"logreg", "mil"}
    organs = ct[ct["task"] == "organs"]
    assert set(organs["probe"]) == {"seg_linear", "seg_decoder"}
    assert {"dice", "jaccard", "hd95", "dice[liver]", "hd95[lesion]"} <= set(organs["metric"])
    lungs = metrics[(metrics["dataset"] == "demo_cxr_seg") & (metrics["task"] == "lungs")]
    assert set(lungs["probe"]) == {"seg_linear", "seg_decoder"} and "dice[left_lung]" in set(lungs["metric"])
    assert lungs["provenance_id"].notna().all() and (lungs["n_evaluated"] > 0).all()
    # The large organ is found: far above an all-background prediction (Dice 0) by some head and backbone.
    assert organs.loc[organs["metric"] == "dice[liver]", "value"].max() > 0.4


def test_volume_predictions_are_nifti_in_the_source_orientation(volumes_run):
    raw = volumes_run / "data" / "raw" / "demo_ct"
    labels = pd.read_csv(raw / "labels.csv").set_index("case_id")
    folder = volumes_run / "results" / "segment" / "demo_ct" / "pixels" / "48" / "seg_decoder" / "seed0" / "volumes"
    written = sorted(folder.glob("*.nii.gz"))
    assert written
    for path in written:
        case = path.name.removesuffix(".nii.gz")
        truth = nib.load(raw / labels.loc[case, "label"])
        predicted = nib.load(path)
        assert predicted.shape == truth.shape and np.allclose(predicted.affine, truth.affine)
    orientations = {nib.aff2axcodes(nib.load(p).affine) for p in written}
    assert len(orientations) >= 1


def test_overlays_are_in_the_report_inputs(volumes_run):
    for dataset in ("demo_ct", "demo_cxr_seg"):
        for ext in ("png", "pdf"):
            assert (volumes_run / "results" / "figures" / f"overlays_{dataset}.{ext}").stat().st_size > 1000


def test_second_run_does_nothing(volumes_run):
    result = snakemake(volumes_run, "--configfile", "config/tiny_volumes.yaml", "-n")
    assert "Nothing to be done" in result.stdout + result.stderr
