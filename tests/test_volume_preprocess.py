"""Volumes through preprocess: canonical slices in radiological layout, one slice stack per split, volume rows."""

import numpy as np
import pandas as pd
import pytest

from medprobe.datasets.registry import get_dataset, preprocess_settings, resolve_options
from medprobe.download import fetch_dataset
from medprobe.io.images import ImageReadError
from medprobe.preprocess import preprocess_dataset
from medprobe.slices import image_slices, label_slices
from medprobe.stages.probe import mean_over_instances

GLOBAL = {"size": 256, "resize_policy": "pad", "voi_fallback": "percentile", "percentiles": [0.5, 99.5],
          "on_error": "fail", "slice_axis": "axial", "ct_window": "wide"}


def test_axial_slices_are_in_radiological_layout():
    volume = np.zeros((8, 6, 3), dtype=np.float32)  # RAS+: x to the patient's right... of the array: +x = right
    volume[-1, :, :] = 1.0  # the patient's far right (largest x)
    volume[:, -1, :] = 0.5  # the most anterior row (largest y)
    slices = image_slices(volume, "axial", 8, "resize")
    assert slices.shape == (3, 8, 8)
    assert slices[0, 4, 0] == 1.0  # patient's right on the image's left
    assert slices[0, 0, 4] == 0.5  # anterior at the top


def test_label_slices_never_invent_labels():
    labels = np.zeros((10, 10, 2), dtype=np.uint8)
    labels[2:5, 2:5] = 3
    labels[6:9, 6:9] = 7
    sliced = label_slices(labels, "axial", 23, "pad")
    assert set(np.unique(sliced)) == {0, 3, 7}


@pytest.fixture(scope="module")
def demo_ct(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo_ct")
    options = resolve_options("demo_ct", {"n_patients": 36, "seed": 4})
    fetch_dataset("demo_ct", base / "raw", options, base / "downloads")
    return base, options


def run(base, options, out, **settings):
    effective = {**preprocess_settings("demo_ct", GLOBAL, options), **settings}
    spec = preprocess_dataset("demo_ct", get_dataset("demo_ct"), base / "raw", base / "raw" / "manifest.tsv", out,
                              effective, options)
    return spec, pd.read_parquet(out / "items.parquet")


def test_volumes_become_slice_stacks(demo_ct, tmp_path):
    base, options = demo_ct
    spec, items = run(base, options, tmp_path / "out")
    labels = pd.read_csv(base / "raw" / "labels.csv", dtype=str)
    assert len(items) == len(labels) and spec["slice_axis"] == "axial" and spec["intensity"]["window"] == "soft_tissue"
    assert any(not path.endswith(".nii.gz") for path in items["source_file"])  # DICOM series folders too
    for split in ("train", "val", "test"):
        part = items[items["split"] == split].sort_values("row")
        array = np.load(tmp_path / "out" / f"{split}.npy", mmap_mode="r")
        assert array.shape[1:] == (1, 64, 64) and array.dtype == np.uint8
        assert part["row"].tolist() == list(range(len(part)))
        assert part["slice_start"].iloc[0] == 0 and part["slice_stop"].iloc[-1] == len(array)
        assert (part["slice_start"].iloc[1:].to_numpy() == part["slice_stop"].iloc[:-1].to_numpy()).all()
        n_axial = part["shape"].map(lambda s: int(s.split("x")[2]))
        assert ((part["slice_stop"] - part["slice_start"]) == n_axial).all()
    assert set(items["original_axcodes"]) >= {"RAS", "LPS"}


def test_unreadable_volume_is_named_or_skipped(demo_ct, tmp_path):
    base, options = demo_ct
    victim = sorted((base / "raw" / "images").glob("*.nii.gz"))[0]
    saved = victim.read_bytes()
    try:
        victim.write_bytes(saved[:200])
        with pytest.raises(ImageReadError, match=victim.name):
            run(base, options, tmp_path / "fail")
        spec, items = run(base, options, tmp_path / "skip", on_error="skip")
        skipped = items[items["status"] != "ok"]
        assert skipped["source_file"].tolist() == [f"images/{victim.name}"]
        assert sum(c["total"] - c["ok"] for c in spec["counts"].values()) == 1
    finally:
        victim.write_bytes(saved)


def test_mean_over_instances_pools_each_volume():
    features = np.arange(12, dtype=np.float32).reshape(6, 2)
    part = pd.DataFrame({"slice_start": [0, 2], "slice_stop": [2, 6]})
    np.testing.assert_array_equal(mean_over_instances(features, part), [[1, 2], [7, 8]])


@pytest.mark.parametrize("spacing, exact", [((1.0, 1.0, 2.0), True), ((2.5, 2.5, 5.0), False)])
def test_resampled_volumes_and_masks_share_a_grid_and_predictions_map_back(demo_ct, tmp_path, spacing, exact):
    """Images and label maps are resampled onto one grid; slices of that grid map back onto each label map's
    own voxels: exactly when the grid is finer than the source (each source voxel has a nearest grid voxel of
    its own), and up to the lost detail when it is coarser."""
    from medprobe.evaluate.segmentation import segmentation_scores
    from medprobe.io.volumes import read_nifti_labels
    from medprobe.masks import write_masks
    from medprobe.stages.segment import predicted_volume, volume_rows

    base, options = demo_ct
    out = tmp_path / "out"
    spec, items = run(base, options, out, spacing=list(spacing), size=160)
    assert spec["resample"]["spacing_mm"] == list(spacing)
    write_masks("demo_ct", get_dataset("demo_ct"), base / "raw", out / "items.parquet", spec, out)
    masks = np.load(out / "masks_test.npy")
    for _, row in volume_rows(items, "test").iterrows():
        source = [float(v) for v in row["spacing"].split("x")]
        grid = [int(v) for v in row["grid_shape"].split("x")]
        assert grid == [round(n * s / t) for n, s, t in zip(map(int, row["shape"].split("x")), source, spacing)]
        assert row["slice_stop"] - row["slice_start"] == grid[2]
        truth = read_nifti_labels(base / "raw" / row["mask_file"])
        back = predicted_volume(masks[row["slice_start"]:row["slice_stop"]], spec, truth)
        assert back.shape == truth.data.shape
        if exact:
            np.testing.assert_array_equal(back, truth.data)
        else:
            liver = segmentation_scores(back, truth.data, [1], spacing=truth.spacing)[1]["dice"]
            assert 0.85 < liver < 1.0
