"""Tile feature extraction: real JPEG pyramidal TIFFs read by OpenSlide in loader workers -> one feature array.

The reference is the model run slide by slide on read_tile() tiles, so any mix-up of rows, slides or
block boundaries (batches here span slides, one slide has no tiles) shows up as a mismatch.
"""

import re

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch

from medprobe.backbones.load import build_backbone
from medprobe.features.extract import prepare
from medprobe.features.tiles import TileBatches, choose_tile_workers, extract_tiles
from medprobe.io.slide_writer import write_pyramidal_tiff
from medprobe.io.slides import SlideError, open_slide, read_plan, read_tile

CPU = torch.device("cpu")
RES = 32
TILE = 40  # tiles at 1.0 µm/px from 0.5 µm/px slides: read at level 1, resized to RES by prepare()


@pytest.fixture(scope="module")
def module():
    return build_backbone("vit_tiny_random")


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    """Four slides of different sizes and tile counts (one with none), each a different random image."""
    folder = tmp_path_factory.mktemp("slides")
    rng = np.random.default_rng(0)
    result = []
    for i, (height, width, n_tiles) in enumerate([(640, 720, 5), (480, 560, 0), (400, 400, 3), (720, 640, 7)]):
        path = folder / f"slide_{i}.tiff"
        write_pyramidal_tiff(path, rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8), mpp=0.5)
        slide = open_slide(path)
        plan = read_plan(slide, path, 1.0, TILE)
        slide.close()
        grid = [(x, y) for y in range(0, height - 80, 80) for x in range(0, width - 80, 80)]
        picks = rng.choice(len(grid), size=n_tiles, replace=False)
        tiles = pd.DataFrame([grid[k] for k in picks], columns=["x", "y"], dtype=np.int64)
        result.append((path, plan, tiles))
    return result


def direct_features(module, path, plan, tiles):
    slide = open_slide(path)
    batch = np.stack([read_tile(slide, int(x), int(y), plan) for x, y in zip(tiles.x, tiles.y)])
    slide.close()
    with torch.inference_mode():
        tokens = module(prepare(torch.from_numpy(batch).permute(0, 3, 1, 2), RES, CPU))
    return torch.stack([tokens["cls"], tokens["patch_mean"]], 1).numpy()


def test_features_match_the_model_on_read_tiles_slide_by_slide(module, slides, tmp_path):
    out = tmp_path / "features.npy"
    shape = extract_tiles(slides, out, module, RES, batch_size=4, num_workers=0, device=CPU, precision="fp32")
    features = np.load(out)
    assert shape == features.shape == (15, 2, 192) and features.dtype == np.float16
    start = 0
    for path, plan, tiles in slides:
        stop = start + len(tiles)
        if len(tiles):
            expected = direct_features(module, path, plan, tiles)
            np.testing.assert_allclose(features[start:stop].astype(np.float32), expected, rtol=2e-3, atol=2e-3)
        start = stop
    assert len({row.tobytes() for row in features}) == len(features)  # every tile its own features


def test_worker_processes_give_identical_bytes(module, slides, tmp_path):
    for workers in (0, 2):
        extract_tiles(slides, tmp_path / f"w{workers}.npy", module, RES, batch_size=3, num_workers=workers,
                      device=CPU, precision="fp32")
    assert (tmp_path / "w0.npy").read_bytes() == (tmp_path / "w2.npy").read_bytes()


def test_batches_span_slides_in_order(slides):
    batches = TileBatches(slides, batch_size=4)
    assert len(batches) == 4  # 15 tiles
    second = batches[1].numpy()  # tiles 4..7: the last of slide 0, then the three of slide 2
    slide = open_slide(slides[2][0])
    for row, (x, y) in zip(second[1:], zip(slides[2][2].x, slides[2][2].y)):
        assert np.array_equal(row.transpose(1, 2, 0), read_tile(slide, int(x), int(y), slides[2][1]))
    slide.close()


@pytest.mark.parametrize("workers", [0, 1])
def test_missing_slide_is_named(module, slides, tmp_path, workers):
    missing = tmp_path / "gone.tiff"
    _, plan, tiles = slides[0]
    out = tmp_path / "features.npy"
    with pytest.raises(SlideError, match=re.escape(str(missing))):
        extract_tiles([slides[2], (missing, plan, tiles)], out, module, RES, batch_size=4, num_workers=workers,
                      device=CPU, precision="fp32")
    assert not out.exists() and not list(tmp_path.glob(".features.npy*"))


@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_tile_names_slide_and_coordinates(module, slides, tmp_path, workers):
    """Level 1's JPEG tiles overwritten with zeros: the slide opens, decoding a tile fails, in the main process or
    in a worker (re-raised by DataLoader as the same SlideError)."""
    path, plan, tiles = slides[0]
    broken = tmp_path / "broken.tiff"
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages[plan.level]
        for offset, count in zip(page.dataoffsets, page.databytecounts):
            data[offset:offset + count] = bytes(count)
    broken.write_bytes(bytes(data))
    x, y = tiles.x.iloc[0], tiles.y.iloc[0]
    with pytest.raises(SlideError, match=rf"{re.escape(str(broken))}.*\({x}, {y}\)"):
        extract_tiles([(broken, plan, tiles)], tmp_path / "f.npy", module, RES, batch_size=4, num_workers=workers,
                      device=CPU, precision="fp32")


def test_tile_sizes_must_agree(slides):
    path, plan, tiles = slides[0]
    slide = open_slide(path)
    other = read_plan(slide, path, 1.0, TILE * 2)
    slide.close()
    with pytest.raises(ValueError, match=r"share a tile size.*\[40, 80\]"):
        TileBatches([slides[0], (path, other, tiles)], batch_size=4)


def test_worker_choice():
    assert choose_tile_workers("auto", CPU) == 0
    assert choose_tile_workers("3", CPU) == 3
    assert 1 <= choose_tile_workers("auto", torch.device("cuda")) <= 8
