"""Preprocess for whole-slide datasets: each slide -> tissue tiles at the target MPP, as tile coordinate tables.

Pixels stay in the slides: the extractor reads every tile from its slide (DESIGN: "tile coordinate tables for
WSI, read from the slide at extraction time"). Per split, `{split}.npy` is a structured array with one record per
tile (the slide's row within the split, level-0 x and y, tissue fraction), a slide's tiles contiguous and in its
row order; the item table gives each slide [tile_start, tile_stop) and its read plan (level, read size, MPPs).
A slide without tissue is a recorded, counted skip; an unreadable slide or one without an MPP fails, or is a
counted skip under `on_error: skip`.

Slides published as plain images (BCNB's JPEGs), which OpenSlide does not open, are converted once into a tiled
pyramidal TIFF under the processed folder (`slides/`, at `fallback_mpp`, as the publisher's own converter does)
and tiled and read from there; the item's `slide_file` names the file actually read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from medprobe.atomic import atomic_path
from medprobe.splits import SPLITS

log = logging.getLogger(__name__)

PLAIN_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CONVERTED_DIR = "slides"
TILE_DTYPE = np.dtype([("slide", np.int32), ("x", np.int64), ("y", np.int64), ("tissue_fraction", np.float32)])
NO_TISSUE = "skipped: no tissue"


def preprocess_tiling(settings: dict) -> dict:
    """The tiling keys set in the preprocess settings, over the tiler's defaults."""
    from medprobe.wsi.tiling import TILING_DEFAULTS, tiling_settings

    return tiling_settings({key: settings[key] for key in TILING_DEFAULTS if settings.get(key) is not None})


def plain_image_to_pyramid(path: Path, out_path: Path, mpp: float | None) -> None:
    """A plain JPEG/PNG slide -> a tiled pyramidal TIFF OpenSlide reads, at the configured MPP (the image has none)."""
    from PIL import Image

    from medprobe.io.slide_writer import write_pyramidal_tiff
    from medprobe.io.slides import SlideError

    if mpp is None:
        raise SlideError(path, "a plain image records no microns per pixel; set `preprocess: {fallback_mpp: ...}` "
                               "for this dataset (the scanner's resolution, e.g. 0.5 at 20x)")
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # whole-slide JPEGs exceed PIL's decompression-bomb guard; these are the dataset's
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError) as err:
        raise SlideError(path, f"not a readable image ({type(err).__name__}: {err})") from err
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_pyramidal_tiff(out_path, rgb, mpp=mpp)


def slide_path(row: pd.Series, raw_root: Path, processed_dir: Path) -> Path:
    """The file a slide's tiles are read from: the raw slide, or its conversion under the processed folder."""
    if row["source_file"] == row["slide_file"]:
        return raw_root / row["source_file"]
    return processed_dir / row["slide_file"]


def write_slide_tiles(dataset: str, root: Path, items: pd.DataFrame, settings: dict,
                      out_dir: Path) -> tuple[int, dict[int, dict], dict]:
    """Tiles every slide of `items` (in place: status, row, tile_start/stop, read plan); returns (tile size,
    per-item metadata, the spec's slide section)."""
    from medprobe.io.slides import SlideError
    from medprobe.wsi.tiling import plan_slide

    tiling = preprocess_tiling(settings)
    items["tile_start"], items["tile_stop"], items["read_plan"] = -1, -1, ""
    items["slide_file"] = items["source_file"]
    metas: dict[int, dict] = {}
    progress = tqdm(total=int((items["status"] == "ok").sum()), desc=f"tile {dataset}", unit="slide")
    for split in SPLITS:
        members = items[(items["split"] == split) & (items["status"] == "ok")]
        records, n_slides = [], 0
        for index, row in members.iterrows():
            progress.update()
            path = root / row["source_file"]
            try:
                if path.suffix.lower() in PLAIN_IMAGE_SUFFIXES:
                    items.at[index, "slide_file"] = f"{CONVERTED_DIR}/{Path(row['source_file']).with_suffix('.tif')}"
                    plain_image_to_pyramid(path, out_dir / items.at[index, "slide_file"], tiling["fallback_mpp"])
                    path = out_dir / items.at[index, "slide_file"]
                plan, tiles, _, _ = plan_slide(path, tiling)
                if items.at[index, "slide_file"] != row["source_file"]:  # the MPP came from the config, not a scanner
                    plan = replace(plan, mpp_source=f"{plan.mpp_source} (written from fallback_mpp on conversion)")
            except SlideError as err:
                if settings["on_error"] == "fail":
                    raise
                log.warning("skipping: %s", err)
                items.at[index, "status"] = f"skipped: {err}"
                continue
            metas[index] = {"base_mpp": plan.base_mpp, "mpp_source": plan.mpp_source, "level": plan.level,
                            "n_tiles": len(tiles)}
            if tiles.empty:
                log.warning("skipping %s: no tissue found (tissue settings %s)", path,
                            {k: tiling[k] for k in ("tissue_mpp", "min_area_um2", "min_tissue")})
                items.at[index, "status"] = NO_TISSUE
                continue
            block = np.zeros(len(tiles), dtype=TILE_DTYPE)
            block["slide"], block["x"], block["y"] = n_slides, tiles["x"], tiles["y"]
            block["tissue_fraction"] = tiles["tissue_fraction"]
            start = sum(len(r) for r in records)
            records.append(block)
            items.at[index, "row"] = n_slides
            items.at[index, "tile_start"], items.at[index, "tile_stop"] = start, start + len(tiles)
            items.at[index, "read_plan"] = json.dumps(plan.as_dict(), sort_keys=True)
            n_slides += 1
        if not records and len(members):
            raise ValueError(f"dataset '{dataset}': no slide with tissue tiles in split '{split}'")
        with atomic_path(out_dir / f"{split}.npy") as tmp, open(tmp, "wb") as handle:
            # An empty split (a test-only transfer set) is an empty table, not a missing file.
            np.save(handle, np.concatenate(records) if records else np.zeros(0, dtype=TILE_DTYPE))
    progress.close()
    stops = items.loc[items["status"] == "ok"].groupby("split")["tile_stop"].max()
    n_tiles = {s: int(stops.get(s, 0)) for s in SPLITS}
    skipped_no_tissue = int((items["status"] == NO_TISSUE).sum())
    return tiling["tile_size"], metas, {
        "tiling": tiling,
        "layout": "per split: one record per tile (slide, x, y, tissue_fraction), level-0 coordinates; "
                  "item rows [tile_start, tile_stop); pixels are read from the slides at extraction",
        "n_tiles": n_tiles,
        "skipped_no_tissue": skipped_no_tissue,
    }


def slide_reads(root: Path, processed_dir: Path, items: pd.DataFrame,
                tiles: np.ndarray) -> list[tuple[Path, object, pd.DataFrame]]:
    """(slide path, ReadPlan, its tiles' x/y) per slide of one split, in row order: what the tile extractor reads."""
    from medprobe.io.slides import ReadPlan

    reads = []
    for _, row in items.sort_values("row").iterrows():
        block = tiles[row["tile_start"]:row["tile_stop"]]
        reads.append((slide_path(row, root, processed_dir), ReadPlan(**json.loads(row["read_plan"])),
                      pd.DataFrame({"x": block["x"], "y": block["y"]})))
    return reads
