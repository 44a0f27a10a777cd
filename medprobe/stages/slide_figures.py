"""Report figures of slide datasets: tiling QC thumbnails and MIL attention heatmaps, a few slides each."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("medprobe")


def _slide_root(manifest: str) -> Path:
    from medprobe.download import dataset_root

    return dataset_root(Path(manifest).parent)


def qc_choice(items: pd.DataFrame, n_slides: int) -> pd.DataFrame:
    """Slides skipped for lack of tissue first (they are what QC is for), then tiled slides in item order."""
    from medprobe.wsi.preprocess import NO_TISSUE

    empty = items[items["status"] == NO_TISSUE]
    tiled = items[items["status"] == "ok"].sort_values("item_id")
    return pd.concat([empty, tiled]).head(n_slides)


def tile_qc_stage(processed_dir: str, manifest: str, out_dir: str, n_slides: int) -> None:
    """QC thumbnails (tissue outline, kept tiles) of up to n_slides slides, recomputing each slide's plan with the
    recorded tiling settings, so the picture is what preprocess did."""
    from medprobe.io.slides import open_slide
    from medprobe.wsi.preprocess import slide_path
    from medprobe.wsi.qc import qc_thumbnail
    from medprobe.wsi.tiling import plan_slide, tiling_settings

    processed_dir, out_dir = Path(processed_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = json.loads((processed_dir / "spec.json").read_text())
    tiling = tiling_settings(spec["tiling"])
    items = pd.read_parquet(processed_dir / "items.parquet")
    root = _slide_root(manifest)
    for _, row in qc_choice(items, n_slides).iterrows():
        path = slide_path(row, root, processed_dir)
        plan, tiles, mask, mask_downsample = plan_slide(path, tiling)
        slide = open_slide(path)
        try:
            title = (f"{row['item_id']} ({row['split']}), MPP from {plan.mpp_source}"
                     + ("" if row["status"] == "ok" else f"; {row['status']}"))
            qc_thumbnail(slide, tiles, plan, mask, mask_downsample, figure_path(out_dir, row["item_id"]), title)
        finally:
            slide.close()


def attention_choice(predictions: pd.DataFrame, tasks: dict, n_slides: int) -> pd.DataFrame:
    """Test slides to draw: the highest-scored positives of the first task that is not a control, then the
    lowest-scored negative."""
    task = next((name for name, task in tasks.items() if not task.get("control") and name in set(predictions["task"])),
                predictions["task"].iloc[0])
    label = predictions.loc[predictions["task"] == task, "label"].iloc[0]
    first = predictions[(predictions["task"] == task) & (predictions["label"] == label)]
    positives = first[first["y_true"] == 1].sort_values(["y_score", "item_id"], ascending=[False, True])
    negatives = first[first["y_true"] == 0].sort_values(["y_score", "item_id"])
    return pd.concat([positives.head(max(1, n_slides - 1)), negatives.head(1)]).head(n_slides)


def attention_maps_stage(attention: str, predictions: str, processed_dir: str, manifest: str, out_dir: str,
                         n_slides: int, source: str) -> None:
    """Heatmaps of MIL attention over the tiles of a few test slides; `source` names the run in the titles."""
    from medprobe.io.slides import ReadPlan
    from medprobe.wsi.figures import attention_heatmap
    from medprobe.wsi.preprocess import slide_path

    processed_dir, out_dir = Path(processed_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = pd.read_parquet(processed_dir / "items.parquet").set_index("item_id")
    tiles = np.load(processed_dir / "test.npy", mmap_mode="r")
    weights = pd.read_parquet(attention)
    tasks = json.loads((processed_dir / "spec.json").read_text())["tasks"]
    chosen = attention_choice(pd.read_parquet(predictions), tasks, n_slides)
    root = _slide_root(manifest)
    for _, pick in chosen.iterrows():
        row = items.loc[pick["item_id"]]
        block = tiles[row["tile_start"]:row["tile_stop"]]
        slide_weights = weights[(weights["task"] == pick["task"]) & (weights["item_id"] == pick["item_id"])]
        title = (f"{pick['item_id']}: {pick['label']} = {pick['y_true']}, MIL score {pick['y_score']:.3f} "
                 f"({source}); {len(block)} tiles")
        attention_heatmap(slide_path(row, root, processed_dir), ReadPlan(**json.loads(row["read_plan"])),
                          pd.DataFrame({"x": block["x"], "y": block["y"]}),
                          slide_weights.sort_values("instance")["weight"].to_numpy(),
                          figure_path(out_dir, pick["item_id"]), title)
    log.info("attention heatmaps of %d slides in %s", len(chosen), out_dir)


def figure_path(out_dir: Path, item_id: str) -> Path:
    """One PNG per slide, flat in out_dir: an item id that is a relative path (a user's table) keeps its folders
    in the name."""
    return out_dir / f"{item_id.replace('/', '__')}.png"
