"""Segment stage: a segmentation head trained on patch-token grids -> predicted test masks, with provenance.

seg_linear runs on images, and on volumes slice by slice; seg_decoder is a light 2-D decoder on images and
a light 3-D decoder over each volume's stacked slice grids (study A). Volume predictions are also written
back as NIfTI in each source's own orientation and affine, so they open on top of the original scan.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from medprobe.atomic import atomic_path
from medprobe.provenance import StageRecord
from medprobe.splits import SPLITS

log = logging.getLogger("medprobe")


def volume_rows(items: pd.DataFrame, split: str) -> pd.DataFrame:
    """The split's kept volumes in row order, with their slice ranges."""
    part = items[(items["split"] == split) & (items["status"] == "ok")]
    return part.sort_values("row")


def segment_stage(head: str, params: dict, seed: int, grids_dir: str, processed_dir: str, manifest: str,
                  upstream: dict, out_dir: str, threads: int = 1, rule: str | None = None,
                  log_path: str | None = None) -> None:
    import torch

    from medprobe.masks import segmentation_task
    from medprobe.probes.segmentation import DEFAULTS_2D, DEFAULTS_3D, run_seg_2d, run_seg_3d

    torch.set_num_threads(max(1, threads))
    grids_dir, processed_dir, out_dir = Path(grids_dir), Path(processed_dir), Path(out_dir)
    record = StageRecord(
        "segment", __name__, {"head": head, "params": params, "seed": seed},
        inputs={**{f"grids_{s}": grids_dir / f"{s}.npy" for s in SPLITS},
                **{f"masks_{s}": processed_dir / f"masks_{s}.npy" for s in SPLITS},
                "items": processed_dir / "items.parquet"},
        upstream=upstream, rule=rule, log=log_path,
    )
    spec = json.loads((processed_dir / "spec.json").read_text())
    _, task = segmentation_task(spec["tasks"])
    n_classes = len(task["labels"]) + 1
    x = {s: np.load(grids_dir / f"{s}.npy", mmap_mode="r") for s in SPLITS}
    m = {s: np.load(processed_dir / f"masks_{s}.npy", mmap_mode="r") for s in SPLITS}
    items = pd.read_parquet(processed_dir / "items.parquet")
    if head == "seg_decoder" and spec["dimensionality"] == "3d":
        ranges = {s: list(zip(volume_rows(items, s)["slice_start"], volume_rows(items, s)["slice_stop"]))
                  for s in SPLITS}
        volumes = {s: [x[s][a:b] for a, b in ranges[s]] for s in SPLITS}
        labels = {s: [m[s][a:b] for a, b in ranges[s]] for s in SPLITS}
        predicted, info = run_seg_3d(volumes["train"], labels["train"], volumes["val"], labels["val"],
                                     volumes["test"], {k: v for k, v in params.items() if k in DEFAULTS_3D},
                                     n_classes, seed)
        prediction = np.concatenate(predicted) if predicted else np.zeros((0, *m["test"].shape[1:]), np.uint8)
    else:
        prediction, info = run_seg_2d(head, x["train"], m["train"], x["val"], m["val"], x["test"],
                                      {k: v for k, v in params.items() if k in DEFAULTS_2D}, n_classes, seed)
    log.info("%s: best validation Dice %.4f at epoch %d", head, info["best_val_dice"], info["best_epoch"])
    with atomic_path(out_dir / "predictions.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, prediction)  # a handle: np.save would append .npy to the temporary name
    written = write_prediction_volumes(spec, items, prediction, Path(manifest).parent, out_dir / "volumes")
    record.write(out_dir / "provenance.json",
                 outputs={"predictions": out_dir / "predictions.npy",
                          **{f"volume_{name}": path for name, path in written.items()}},
                 extra={"info": info})


def predicted_volume(slices: np.ndarray, spec: dict, truth) -> np.ndarray:
    """A volume's predicted label slices -> a label array on its label map's own canonical grid (`truth`, a Volume):
    the inverse slice geometry, then, when preprocessing resampled the volume, nearest-neighbour back from that grid.
    """
    from medprobe.io.volumes import onto_grid, resampled_grid
    from medprobe.slices import volume_from_label_slices

    if not spec.get("resample"):
        return volume_from_label_slices(slices, spec["slice_axis"], truth.data.shape, spec["resize_policy"])
    shape, affine = resampled_grid(truth.data.shape, truth.affine, spec["resample"]["spacing_mm"])
    on_grid = volume_from_label_slices(slices, spec["slice_axis"], shape, spec["resize_policy"])
    return onto_grid(on_grid, affine, truth.data.shape, truth.affine, order=0, mode="nearest")


def write_prediction_volumes(spec: dict, items: pd.DataFrame, prediction: np.ndarray, raw_dir: Path,
                             folder: Path) -> dict[str, Path]:
    """Each test volume's predicted slices -> a label volume on its label map's grid, as NIfTI in the source
    orientation. 2-D datasets write nothing (the folder stays empty)."""
    from medprobe.download import dataset_root
    from medprobe.io.volumes import read_nifti_labels, write_nifti

    folder.mkdir(parents=True, exist_ok=True)
    if spec["dimensionality"] != "3d":
        return {}
    root = dataset_root(raw_dir)
    written = {}
    for _, row in volume_rows(items, "test").iterrows():
        truth = read_nifti_labels(root / row["mask_file"])
        volume = predicted_volume(prediction[row["slice_start"]:row["slice_stop"]], spec, truth)
        written[row["item_id"]] = write_nifti(volume, truth.affine, folder / f"{row['item_id']}.nii.gz",
                                              original_affine=truth.meta["original_affine"])
    return written
