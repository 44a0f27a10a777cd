"""Slides published as plain JPEGs (BCNB): converted once to a pyramid OpenSlide reads, tiled from it."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medprobe.io.slides import SlideError, open_slide
from medprobe.wsi.preprocess import slide_path, slide_reads, write_slide_tiles

SETTINGS = {"on_error": "fail", "target_mpp": 1.0, "tile_size": 224, "fallback_mpp": 0.5, "min_area_um2": 0.0}


def _jpeg_slide(path, seed):
    """White glass with a pink tissue block of 1400 x 1000 px (700 x 500 µm at 0.5 µm/px)."""
    rng = np.random.default_rng(seed)
    rgb = np.full((1600, 2000, 3), 245, dtype=np.uint8)
    rgb[300:1300, 300:1700] = np.clip(rng.normal((215, 120, 175), 12, (1000, 1400, 3)), 0, 255)
    Image.fromarray(rgb).save(path, quality=90)


@pytest.fixture
def jpeg_items(tmp_path):
    root = tmp_path / "raw"
    (root / "WSIs").mkdir(parents=True)
    rows = []
    for i, split in enumerate(("train", "val", "test")):
        _jpeg_slide(root / "WSIs" / f"{i}.jpg", i)
        rows.append({"item_id": str(i), "patient_id": str(i), "source_file": f"WSIs/{i}.jpg", "split": split,
                     "status": "ok", "row": -1})
    return root, pd.DataFrame(rows)


def test_plain_jpeg_is_converted_and_tiled_at_the_configured_mpp(jpeg_items, tmp_path):
    root, items = jpeg_items
    out = tmp_path / "processed"
    out.mkdir()
    _, metas, spec = write_slide_tiles("bcnb_like", root, items, SETTINGS, out)
    assert (items["status"] == "ok").all()
    assert items["slide_file"].tolist() == [f"slides/WSIs/{i}.tif" for i in range(3)]
    assert all(m["base_mpp"] == 0.5 and m["mpp_source"].startswith("openslide") and "fallback_mpp" in m["mpp_source"]
               for m in metas.values())
    # 700 x 500 µm of tissue at 1 µm/px in 224 px tiles: 3 x 2 tiles wholly on tissue, more partly
    assert all(m["n_tiles"] >= 6 for m in metas.values()) and spec["n_tiles"]["test"] >= 6
    test = items[items["split"] == "test"]
    (path, plan, tiles), = slide_reads(root, out, test, np.load(out / "test.npy"))
    assert path == out / "slides" / "WSIs" / "2.tif" == slide_path(test.iloc[0], root, out)
    with open_slide(path) as slide:
        assert slide.level_count > 1 and float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.5)
    assert plan.level == 1 and plan.read_size == 224 and len(tiles) == len(np.load(out / "test.npy"))


def test_plain_jpeg_without_fallback_mpp_names_the_file(jpeg_items, tmp_path):
    root, items = jpeg_items
    with pytest.raises(SlideError, match=r"0\.jpg.*fallback_mpp"):
        write_slide_tiles("bcnb_like", root, items, {**SETTINGS, "fallback_mpp": None}, tmp_path)


def test_converted_slides_are_hashed_in_the_preprocess_record(jpeg_items, tmp_path):
    from medprobe.stages.preprocess import converted_slides

    root, items = jpeg_items
    out = tmp_path / "processed"
    out.mkdir()
    write_slide_tiles("bcnb_like", root, items, SETTINGS, out)
    items.to_parquet(out / "items.parquet", index=False)
    outputs = converted_slides(str(out / "items.parquet"))
    assert outputs == {f"slide_{i}": str(out / "slides" / "WSIs" / f"{i}.tif") for i in range(3)}
