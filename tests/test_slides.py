"""Whole-slide reading, tissue detection, tiling and QC on real pyramidal TIFFs written here and read by OpenSlide."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from medprobe.io.slide_writer import write_pyramidal_tiff
from medprobe.io.slides import SlideError, open_slide, read_plan, read_tile, slide_mpp
from medprobe.wsi.qc import qc_thumbnail
from medprobe.wsi.tiling import TILING_DEFAULTS, plan_slide, tile_grid
from medprobe.wsi.tissue import tissue_mask

PINK = (200, 110, 170)  # eosin-like: saturation 0.45, far above glass


def noise_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def tissue_rgb(height: int, width: int, boxes: list[tuple[int, int, int, int]], holes=()) -> np.ndarray:
    """White glass with pink tissue in each (x0, y0, x1, y1) box, then white holes punched in."""
    rgb = np.full((height, width, 3), 250, dtype=np.uint8)
    for x0, y0, x1, y1 in boxes:
        rgb[y0:y1, x0:x1] = PINK
    for x0, y0, x1, y1 in holes:
        rgb[y0:y1, x0:x1] = 250
    return rgb


def write_tiled_page(path, rgb: np.ndarray, **tags) -> None:
    """One tiled page with whatever tags the test needs (the shared writer makes only well-formed slides)."""
    tifffile.imwrite(path, rgb, tile=(256, 256), photometric="rgb", compression="jpeg", metadata=None, **tags)


@pytest.mark.parametrize("base_mpp, n_levels, target_mpp, level, read_size", [
    (0.25, 3, 0.5, 1, 224),   # exact level: no resize
    (0.25, 4, 1.0, 2, 224),
    (0.25, 2, 1.0, 1, 448),   # pyramid too short: read finer, downsample 2x
    (0.25, 4, 0.6, 1, 269),   # between levels: the finer one, never upsample (224 * 2.4 / 2 = 268.8)
    (0.5, 3, 0.5, 0, 224),
    (0.3, 3, 0.5, 0, 373),    # 224 * 0.5 / 0.3 = 373.3
    (0.3, 3, 1.2, 2, 224),
])
def test_level_and_read_size_follow_target_mpp(tmp_path, base_mpp, n_levels, target_mpp, level, read_size):
    path = tmp_path / "slide.tif"
    write_pyramidal_tiff(path, noise_rgb(2048, 2048), base_mpp, n_levels=n_levels)
    with open_slide(path) as slide:
        assert slide.level_count == n_levels
        assert slide.properties["openslide.vendor"] == "generic-tiff"
        plan = read_plan(slide, path, target_mpp, 224)
        assert (plan.level, plan.read_size) == (level, read_size)
        assert plan.level_downsample == pytest.approx(2.0 ** level)
        assert plan.tile_size_level0 == pytest.approx(224 * target_mpp / base_mpp)
        assert (plan.base_mpp, plan.mpp_source) == (pytest.approx(base_mpp), "openslide.mpp-x/y")
        assert read_tile(slide, 64, 32, plan).shape == (224, 224, 3)
    recorded = json.loads(json.dumps(plan.as_dict()))
    assert recorded["level"] == level and recorded["resample"] == plan.resample and recorded["target_mpp"] == target_mpp


def test_odd_sized_pyramid_still_reads_its_level_without_resize(tmp_path):
    """Odd sizes make level downsamples only nearly 2 (here ~1.998); the tolerance must still choose level 1."""
    path = tmp_path / "odd.tif"
    write_pyramidal_tiff(path, noise_rgb(1099, 1501), 0.25, n_levels=3)
    with open_slide(path) as slide:
        assert slide.level_downsamples[1] != 2.0
        plan = read_plan(slide, path, 0.5, 224)
    assert (plan.level, plan.read_size) == (1, 224)


def test_aperio_slide_opens_as_aperio_with_its_mpp(tmp_path):
    path = tmp_path / "aperio.svs.tif"
    write_pyramidal_tiff(path, noise_rgb(1024, 1024), 0.5, n_levels=3, vendor="aperio")
    with open_slide(path) as slide:
        assert slide.properties["openslide.vendor"] == "aperio"
        assert slide.properties["openslide.objective-power"] == "20"
        assert slide_mpp(slide, path) == (pytest.approx(0.5), "openslide.mpp-x/y")
        assert slide_mpp(slide, path, fallback_mpp=0.25)[0] == pytest.approx(0.5)  # the file's value wins
        plan = read_plan(slide, path, 1.0, 224)
    assert (plan.level, plan.read_size, plan.base_mpp) == (1, 224, pytest.approx(0.5))


def test_slide_without_mpp_needs_fallback_and_records_it(tmp_path):
    path = tmp_path / "no_mpp.tif"
    write_pyramidal_tiff(path, noise_rgb(1024, 1024), None, n_levels=2)
    with open_slide(path) as slide:
        with pytest.raises(SlideError, match="fallback_mpp") as error:
            read_plan(slide, path, 0.5, 224)
        assert str(path) in str(error.value)
        plan = read_plan(slide, path, 0.5, 224, fallback_mpp=0.25)
        with pytest.raises(SlideError, match="fallback_mpp must be a positive"):
            slide_mpp(slide, path, fallback_mpp=0)
    assert (plan.base_mpp, plan.mpp_source, plan.level) == (0.25, "config fallback_mpp", 1)


def test_objective_power_is_never_turned_into_an_mpp(tmp_path):
    path = tmp_path / "appmag_only.tif"
    write_tiled_page(path, noise_rgb(512, 512), description="Aperio Image Library v12.0.0\n512x512 |AppMag = 40")
    with open_slide(path) as slide:
        assert slide.properties["openslide.objective-power"] == "40"
        with pytest.raises(SlideError, match=r"objective power 40x is not a reliable MPP.*fallback_mpp"):
            slide_mpp(slide, path)


def test_non_square_pixels_and_upsampling_are_errors(tmp_path):
    path = tmp_path / "non_square.tif"
    write_tiled_page(path, noise_rgb(512, 512), resolution=(1e4 / 0.25, 1e4 / 0.26), resolutionunit="CENTIMETER")
    with open_slide(path) as slide:
        with pytest.raises(SlideError, match="non-square pixels") as error:
            slide_mpp(slide, path)
        assert str(path) in str(error.value)
    path = tmp_path / "base.tif"
    write_pyramidal_tiff(path, noise_rgb(512, 512), 0.5, n_levels=1)
    with open_slide(path) as slide:
        with pytest.raises(SlideError, match=r"target_mpp 0.25 is finer than the slide's base mpp 0.5"):
            read_plan(slide, path, 0.25, 224)
        assert read_plan(slide, path, 0.4998, 224).read_size == 224  # within the level tolerance: no upsampling


def test_tiles_equal_read_region_pixels(tmp_path):
    exact, resized = tmp_path / "exact.tif", tmp_path / "resized.tif"
    write_pyramidal_tiff(exact, noise_rgb(1024, 1024, seed=1), 0.25, n_levels=3)
    write_pyramidal_tiff(resized, noise_rgb(1024, 1024, seed=2), 0.3, n_levels=3)
    with open_slide(exact) as slide:
        plan = read_plan(slide, exact, 0.5, 224)
        assert plan.read_size == plan.tile_size == 224 and plan.level == 1
        region = np.asarray(slide.read_region((130, 66), 1, (224, 224)))
        assert (region[..., 3] == 255).all()
        np.testing.assert_array_equal(read_tile(slide, 130, 66, plan), region[..., :3])
        # Half outside level 0: OpenSlide returns transparent pixels there, which must come back white.
        edge = read_tile(slide, 1024 - 200, 0, plan)
        np.testing.assert_array_equal(edge[:, :100], np.asarray(slide.read_region((824, 0), 1, (100, 224)))[..., :3])
        assert (edge[:, 100:] == 255).all()
    with open_slide(resized) as slide:
        plan = read_plan(slide, resized, 0.5, 224)
        assert (plan.level, plan.read_size) == (0, 373)
        region = Image.fromarray(np.asarray(slide.read_region((40, 300), 0, (373, 373)))[..., :3])
        expected = np.asarray(region.resize((224, 224), Image.Resampling[plan.resample]))
        np.testing.assert_array_equal(read_tile(slide, 40, 300, plan), expected)


def expected_fraction(x: int, y: int, side: float, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    overlap_x = max(0.0, min(x + side, x1) - max(x, x0))
    overlap_y = max(0.0, min(y + side, y1) - max(y, y0))
    return overlap_x * overlap_y / side**2


# 2048 px at 0.5 µm/px; tissue_mpp 8 gives a 16x-reduced mask, so boxes on multiples of 16 are exact in it.
TISSUE_BOX = (512, 320, 1536, 1312)
SPECK = (1792, 1792, 1840, 1840)   # 24 x 24 µm = 576 µm² of tissue: below min_area_um2, removed
HOLE = (960, 800, 1024, 864)       # 32 x 32 µm = 1024 µm² of glass inside tissue: filled


@pytest.fixture(scope="module")
def tissue_slide(tmp_path_factory):
    path = tmp_path_factory.mktemp("tissue") / "tissue.tif"
    write_pyramidal_tiff(path, tissue_rgb(2048, 2048, [TISSUE_BOX, SPECK], [HOLE]), 0.5, n_levels=3)
    return path


def test_tissue_mask_otsu_and_area_filtering(tissue_slide):
    with open_slide(tissue_slide) as slide:
        mask, downsample = tissue_mask(slide, {"tissue_mpp": 8.0, "min_area_um2": 10000.0})
        raw, _ = tissue_mask(slide, {"tissue_mpp": 8.0, "min_area_um2": 0.0})
    assert downsample == 16 and mask.shape == (128, 128)
    x0, y0, x1, y1 = (v // 16 for v in TISSUE_BOX)
    expected = np.zeros((128, 128), bool)
    expected[y0:y1, x0:x1] = True
    np.testing.assert_array_equal(mask, expected)
    assert raw[SPECK[1] // 16 + 1, SPECK[0] // 16 + 1] and not raw[HOLE[1] // 16 + 1, HOLE[0] // 16 + 1]


def test_tiles_cover_the_tissue_with_the_right_fractions(tissue_slide):
    with open_slide(tissue_slide) as slide:
        plan = read_plan(slide, tissue_slide, 1.0, 112)  # 224 level-0 px per tile
        mask, downsample = tissue_mask(slide, TILING_DEFAULTS, plan.base_mpp)
        every = tile_grid(slide, plan, mask, downsample, overlap=0, min_tissue=0.0)
        kept = tile_grid(slide, plan, mask, downsample, overlap=0, min_tissue=0.5)
        overlapping = tile_grid(slide, plan, mask, downsample, overlap=56, min_tissue=0.0)
        full = tile_grid(slide, plan, mask, downsample, overlap=0, min_tissue=1.0)
    side = plan.tile_size_level0
    assert list(every.columns) == ["x", "y", "tissue_fraction"]
    assert [str(t) for t in every.dtypes] == ["int64", "int64", "float32"]
    starts = np.arange(0, 2048 - 224 + 1, 224)  # the whole grid that fits, and no more
    assert (every["x"].to_numpy() == np.tile(starts, len(starts))).all()
    assert (every["y"].to_numpy() == np.repeat(starts, len(starts))).all()  # row-major
    truth = np.array([expected_fraction(x, y, side, TISSUE_BOX) for x, y in zip(every["x"], every["y"])])
    np.testing.assert_allclose(every["tissue_fraction"], truth, atol=1e-6)
    assert set(zip(kept["x"], kept["y"])) == {(x, y) for x, y, f in zip(every["x"], every["y"], truth) if f >= 0.5}
    assert (kept["tissue_fraction"] >= 0.5).all()
    assert len(full) == (truth == 1).sum() > 0
    margin = int(np.ceil(side))  # a point this far inside the tissue lies in a tile wholly on tissue
    for x in range(TISSUE_BOX[0] + margin, TISSUE_BOX[2] - margin, 32):
        for y in range(TISSUE_BOX[1] + margin, TISSUE_BOX[3] - margin, 32):
            assert ((kept["x"] <= x) & (x < kept["x"] + side) & (kept["y"] <= y) & (y < kept["y"] + side)).any()
    # overlap 56 of 112 target px halves the stride to 112 level-0 px
    assert sorted(set(overlapping["x"])) == list(range(0, 2048 - 224 + 1, 112))


def test_fractional_stride_is_rounded_per_tile_and_stays_inside(tmp_path):
    path = tmp_path / "fractional.tif"
    write_pyramidal_tiff(path, tissue_rgb(1000, 1500, [(0, 0, 1500, 1000)]), 0.3, n_levels=2)
    with open_slide(path) as slide:
        plan = read_plan(slide, path, 0.5, 64)   # 106.67 level-0 px per tile
        mask, downsample = tissue_mask(slide, {}, plan.base_mpp)
        tiles = tile_grid(slide, plan, mask, downsample, overlap=16, min_tissue=0.9)
    stride = 48 * 0.5 / 0.3
    columns = np.array(sorted(set(tiles["x"])))
    np.testing.assert_array_equal(columns, np.round(np.arange(len(columns)) * stride))
    assert columns.max() + plan.tile_size_level0 <= 1500 < np.round(len(columns) * stride) + plan.tile_size_level0
    assert tiles["y"].max() + plan.tile_size_level0 <= 1000
    assert len(tiles) == len(columns) * len(set(tiles["y"]))


def test_blank_slide_gives_no_tiles_and_a_qc_picture(tmp_path):
    """Glass with uneven illumination and noise: Otsu alone would split it in two, the saturation floor must not."""
    path = tmp_path / "blank.tif"
    glass = np.random.default_rng(3).integers(240, 250, (1024, 1536, 3)).astype(np.float64)
    glass[..., 2] += np.linspace(0, 6, 1536)  # a faint blue cast growing to the right (saturation <= 0.04)
    glass = glass.astype(np.uint8)
    write_pyramidal_tiff(path, glass, 0.25, n_levels=3)
    plan, tiles, mask, downsample = plan_slide(path, {})
    assert not mask.any() and tiles.empty and list(tiles.columns) == ["x", "y", "tissue_fraction"]
    with open_slide(path) as slide:
        qc_thumbnail(slide, tiles, plan, mask, downsample, tmp_path / "blank.png", "blank")
    assert Image.open(tmp_path / "blank.png").format == "PNG"


def test_plan_slide_and_qc_thumbnail(tissue_slide, tmp_path):
    plan, tiles, mask, downsample = plan_slide(tissue_slide, {"target_mpp": 1.0, "tile_size": 112})
    assert (plan.level, plan.read_size, len(tiles)) == (1, 112, 23)  # 5 x 5 less two corners under half
    out = tmp_path / "qc" / "tissue.png"
    with open_slide(tissue_slide) as slide:
        qc_thumbnail(slide, tiles, plan, mask, downsample, out, "tissue.tif")
    with Image.open(out) as picture:
        assert picture.format == "PNG" and min(picture.size) > 200
        rgb = np.asarray(picture.convert("RGB")).reshape(-1, 3).astype(int)
    assert ((rgb[:, 2] > 150) & (rgb[:, 0] < 100) & (rgb[:, 1] < 100)).any()  # the blue tile squares are drawn
    with pytest.raises(ValueError, match="unknown tiling settings"):
        plan_slide(tissue_slide, {"tile_sise": 112})
    with open_slide(tissue_slide) as slide:
        with pytest.raises(ValueError, match="overlap"):
            tile_grid(slide, plan, mask, downsample, overlap=112, min_tissue=0.5)


def test_missing_corrupt_and_untiled_files_are_named_errors(tmp_path):
    untiled = tmp_path / "untiled.tif"
    tifffile.imwrite(untiled, noise_rgb(300, 400), photometric="rgb")
    random_bytes = tmp_path / "random.tif"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(5000))
    good = tmp_path / "good.tif"
    write_pyramidal_tiff(good, noise_rgb(1024, 1024), 0.25, n_levels=3)
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases = {tmp_path / "missing.tif": "file not found", untiled: "untiled TIFF: OpenSlide reads only tiled",
             random_bytes: "not a slide OpenSlide can read", truncated: "not a slide OpenSlide can read"}
    for path, reason in cases.items():
        with pytest.raises(SlideError, match=reason) as error:
            open_slide(path)
        assert str(path) in str(error.value)


def test_corrupt_tile_data_is_a_named_error_when_read(tmp_path):
    """OpenSlide hashes only the smallest level when opening, so damage in level 0 shows up at read time."""
    path = tmp_path / "damaged.tif"
    write_pyramidal_tiff(path, noise_rgb(1024, 1024), 0.25, n_levels=3)
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    data = bytearray(path.read_bytes())
    data[offset:offset + count] = bytes(count)
    path.write_bytes(bytes(data))
    with open_slide(path) as slide:
        plan = read_plan(slide, path, 0.25, 224)
        with pytest.raises(SlideError, match="corrupt tile data") as error:
            read_tile(slide, 0, 0, plan)
    assert str(path) in str(error.value)


def test_a_large_level_is_reduced_in_bands_like_the_whole(tmp_path, monkeypatch):
    """A level read in bands of rows gives the same low-resolution image as one read whole, up to the band seams."""
    from medprobe.wsi import tissue

    path = tmp_path / "banded.tif"
    rng = np.random.default_rng(3)
    rgb = np.clip(rng.normal(200, 30, (1200, 1000, 3)), 0, 255).astype(np.uint8)
    write_pyramidal_tiff(path, rgb, mpp=0.5, n_levels=1, compression=None)
    with open_slide(path) as slide:
        whole = tissue.low_resolution_rgb(slide, 8.0)
        monkeypatch.setattr(tissue, "MAX_READ_PIXELS", 1000 * 100)  # bands of about 100 level rows
        banded = tissue.low_resolution_rgb(slide, 8.0)
    assert banded.shape == whole.shape == (150, 125, 3)
    assert np.abs(banded.astype(int) - whole.astype(int)).mean() < 1.0
