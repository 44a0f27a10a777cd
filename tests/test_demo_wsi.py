"""The pyramidal TIFF writer and the generated demo slides, read back with OpenSlide and tifffile only, so they
check the files rather than medprobe's own slide readers."""

import hashlib

import numpy as np
import openslide
import pandas as pd
import pytest
import tifffile
from PIL import Image
from scipy import ndimage

from medprobe.datasets import demo_wsi
from medprobe.io.slide_writer import write_pyramidal_tiff

N_SLIDES = 8  # the smallest set: two Aperio slides (indices 2 and 6), the no-MPP slide and the blank one
TILE_UM = 224


def smooth_rgb(shape, seed=0):
    """A smooth random colour image: JPEG keeps it close, unlike white noise."""
    noise = np.random.default_rng(seed).normal(size=(*shape, 3))
    field = ndimage.gaussian_filter(noise, (6, 6, 0))
    return np.clip(128 + field / field.std() * 40, 0, 255).astype(np.uint8)


def read_level(slide, level):
    width, height = slide.level_dimensions[level]
    return np.asarray(slide.read_region((0, 0), level, (width, height)).convert("RGB")).astype(int)


def saturation(rgb):
    top = rgb.max(axis=2)
    return (top - rgb.min(axis=2)) / np.maximum(top, 1)


# ---- write_pyramidal_tiff ----

def test_generic_jpeg_slide_has_levels_resolution_and_pixels(tmp_path):
    rgb = smooth_rgb((1037, 1501))  # odd sizes: reduced levels round up
    path = tmp_path / "generic.tif"
    write_pyramidal_tiff(path, rgb, mpp=0.5)
    with openslide.OpenSlide(path) as slide:
        assert slide.properties[openslide.PROPERTY_NAME_VENDOR] == "generic-tiff"
        assert slide.level_count == 3  # 1501 -> 751 -> 376: the longer side ends at or below 512
        assert slide.level_dimensions == ((1501, 1037), (751, 519), (376, 260))
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(0.5, rel=1e-4)
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_Y]) == pytest.approx(0.5, rel=1e-4)
        assert openslide.PROPERTY_NAME_OBJECTIVE_POWER not in slide.properties
        error = np.abs(read_level(slide, 0) - rgb)
        assert error.mean() < 4 and np.percentile(error, 99) < 20
        reduced = np.asarray(Image.fromarray(rgb).reduce(2)).astype(int)
        assert np.abs(read_level(slide, 1) - reduced).mean() < 8
    with tifffile.TiffFile(path) as tiff:
        assert [page.is_tiled for page in tiff.pages] == [True] * 3
        assert [page.tags["NewSubfileType"].value for page in tiff.pages] == [0, 1, 1]
        assert all(306 not in page.tags for page in tiff.pages)  # no DateTime: same array, same bytes


def test_uncompressed_slide_is_exact(tmp_path):
    rgb = smooth_rgb((600, 900), seed=1)
    path = tmp_path / "raw.tif"
    write_pyramidal_tiff(path, rgb, mpp=0.25, n_levels=2, tile=128, compression=None)
    with openslide.OpenSlide(path) as slide:
        assert slide.level_count == 2
        np.testing.assert_array_equal(read_level(slide, 0), rgb)
        np.testing.assert_array_equal(read_level(slide, 1), np.asarray(Image.fromarray(rgb).reduce(2)))
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(0.25, rel=1e-4)
        x, y = 333, 222  # an offset region crossing tile borders
        region = np.asarray(slide.read_region((x, y), 0, (200, 150)).convert("RGB"))
        np.testing.assert_array_equal(region, rgb[y : y + 150, x : x + 200])


def test_aperio_slide_reports_objective_power_and_mpp(tmp_path):
    path = tmp_path / "aperio.tif"
    write_pyramidal_tiff(path, smooth_rgb((700, 1300), seed=2), mpp=0.25, vendor="aperio")
    with openslide.OpenSlide(path) as slide:
        assert slide.properties[openslide.PROPERTY_NAME_VENDOR] == "aperio"
        assert slide.properties[openslide.PROPERTY_NAME_OBJECTIVE_POWER] == "40"
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(0.25)
        assert slide.level_count == 3
        assert not slide.associated_images  # every page is a level, none is taken for a thumbnail


def test_no_mpp_writes_no_resolution(tmp_path):
    path = tmp_path / "no_mpp.tif"
    write_pyramidal_tiff(path, smooth_rgb((300, 400), seed=3), mpp=None)
    with openslide.OpenSlide(path) as slide:
        assert slide.properties[openslide.PROPERTY_NAME_VENDOR] == "generic-tiff"
        assert openslide.PROPERTY_NAME_MPP_X not in slide.properties
        assert slide.level_count == 1
    with tifffile.TiffFile(path) as tiff:  # baseline TIFF requires XResolution; a unitless 1/1 carries no size
        assert tiff.pages[0].tags["ResolutionUnit"].value == tifffile.RESUNIT.NONE


@pytest.mark.parametrize("kwargs", [{"rgb": np.zeros((64, 64, 3), np.float32)}, {"rgb": np.zeros((64, 64), np.uint8)},
                                    {"mpp": 0.0}, {"vendor": "hamamatsu"}, {"compression": "lzw"}])
def test_bad_arguments_are_refused(tmp_path, kwargs):
    arguments = {"rgb": np.zeros((64, 64, 3), np.uint8), "mpp": 0.5} | kwargs
    with pytest.raises(ValueError):
        write_pyramidal_tiff(tmp_path / "bad.tif", **arguments)
    assert not list(tmp_path.iterdir())


# ---- the generated demo ----

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    first, second = tmp_path_factory.mktemp("demo_wsi_a"), tmp_path_factory.mktemp("demo_wsi_b")
    for root in (first, second):
        demo_wsi.generate(root, n_slides=N_SLIDES, seed=3)
    return first, second


@pytest.fixture(scope="module")
def slides(demo):
    """Per slide: its labels.csv row joined with split.csv, its OpenSlide properties and its image at 1 µm/px."""
    root = demo[0]
    table = pd.read_csv(root / "labels.csv").merge(pd.read_csv(root / "split.csv"), on="patient_id")
    loaded = []
    for row in table.itertuples():
        with openslide.OpenSlide(root / row.slide) as slide:
            mpp = float(slide.properties.get(openslide.PROPERTY_NAME_MPP_X, 0.5))  # the demo's fallback_mpp
            level = slide.get_best_level_for_downsample(1 / mpp * 1.001)
            assert slide.level_downsamples[level] == pytest.approx(1 / mpp)
            loaded.append((row, dict(slide.properties), slide.level_dimensions, read_level(slide, level)))
    return loaded


def digests(root):
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def test_same_arguments_give_byte_identical_folders(demo):
    files = digests(demo[0])
    assert files == digests(demo[1])
    assert set(files) == {"labels.csv", "split.csv"} | {f"slides/wsi_{index:04d}.tif" for index in range(N_SLIDES)}


def test_labels_and_patient_level_splits(demo):
    labels, splits = pd.read_csv(demo[0] / "labels.csv"), pd.read_csv(demo[0] / "split.csv")
    assert list(labels.columns) == ["slide_id", "patient_id", "slide", "tumor", "control"]
    assert list(splits.columns) == ["patient_id", "split"]
    assert labels.patient_id.is_unique and labels.slide_id.is_unique  # one slide per patient
    assert set(labels.patient_id) == set(splits.patient_id) and splits.patient_id.is_unique
    assert set(labels.tumor) == set(labels.control) == {0, 1}
    assert labels.tumor.sum() == N_SLIDES // 2
    assert all((demo[0] / path).is_file() for path in labels.slide)
    merged = labels.merge(splits, on="patient_id")
    assert set(merged.split) == {"train", "val", "test"}
    for split, group in merged.groupby("split"):
        assert set(group.tumor) == {0, 1}, split


def test_formats_vary_like_real_archives(slides):
    vendors = [properties[openslide.PROPERTY_NAME_VENDOR] for _, properties, _, _ in slides]
    assert vendors == ["generic-tiff", "generic-tiff", "aperio", "generic-tiff"] * 2
    without_mpp = [row.slide_id for row, properties, _, _ in slides if openslide.PROPERTY_NAME_MPP_X not in properties]
    assert without_mpp == ["wsi_0001"]
    for row, properties, dimensions, image in slides:
        if row.slide_id in without_mpp:
            continue
        aperio = properties[openslide.PROPERTY_NAME_VENDOR] == "aperio"
        assert float(properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(0.25 if aperio else 0.5)
        if aperio:
            assert properties[openslide.PROPERTY_NAME_OBJECTIVE_POWER] == "40"
    for row, properties, dimensions, image in slides:
        height_um, width_um = image.shape[:2]  # at 1 µm/px
        assert 1150 <= width_um <= 1850 and 750 <= height_um <= 1250, row.slide_id
        assert 256 < max(dimensions[-1]) <= 512, row.slide_id  # the pyramid ends near 512 px


def test_exactly_one_blank_training_negative(slides):
    tissue = {row.slide_id: (saturation(image) > 0.15).mean() for row, _, _, image in slides}
    blank = [slide_id for slide_id, fraction in tissue.items() if fraction == 0]
    assert len(blank) == 1
    row, _, _, image = next(item for item in slides if item[0].slide_id == blank[0])
    assert row.tumor == 0 and row.split == "train"
    assert saturation(image).max() < 0.05 and image.min() > 200  # glass only
    assert all(fraction > 0.2 for slide_id, fraction in tissue.items() if slide_id != blank[0])


def test_tumour_tiles_are_darker_and_more_nuclear(slides):
    """At 1 µm/px the densest 224 µm tile of every tumour slide holds several times the dark-purple (nuclear)
    pixels of any tile of a normal slide; over the whole tissue the small tumours are diluted, so the classes
    differ on average but may overlap: the tile-level signal is what attention MIL can find and mean-pooling loses."""
    densest, overall = {}, {}
    for row, _, _, image in slides:
        tissue = saturation(image) > 0.15
        if not tissue.any():
            continue
        nuclear = (image.mean(axis=2) < 120) & (image[:, :, 2] > image[:, :, 0])
        fractions = [nuclear[y : y + TILE_UM, x : x + TILE_UM][tissue[y : y + TILE_UM, x : x + TILE_UM]].mean()
                     for y in range(0, image.shape[0] - TILE_UM + 1, TILE_UM)
                     for x in range(0, image.shape[1] - TILE_UM + 1, TILE_UM)
                     if tissue[y : y + TILE_UM, x : x + TILE_UM].mean() >= 0.5]
        densest[row.tumor] = densest.get(row.tumor, []) + [max(fractions)]
        overall[row.tumor] = overall.get(row.tumor, []) + [nuclear[tissue].mean()]
    assert min(densest[1]) > 3 * max(densest[0])
    assert np.mean(overall[1]) > 1.3 * np.mean(overall[0])


def test_tumour_lies_inside_the_tissue():
    rng = np.random.Generator(np.random.PCG64(11))
    for _ in range(10):
        depth = demo_wsi._tissue_depth(rng, (120, 200))
        tumour = demo_wsi._tumour_depth(rng, depth)
        assert (tumour > 0).any()
        assert depth[tumour > 0].min() >= demo_wsi.TUMOR_MARGIN_UM / 2


def test_too_few_slides_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least"):
        demo_wsi.generate(tmp_path, n_slides=demo_wsi.MIN_SLIDES - 1)
