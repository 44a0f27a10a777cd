"""volume_from_label_slices undoes label_slices: predicted slice masks go back into the canonical label grid."""

import numpy as np
import pytest

from medprobe.slices import AXES, label_slices, volume_from_label_slices

SHAPES = [(37, 23, 11), (9, 30, 17), (16, 16, 5)]


def blocky(shape, seed, block=8):
    """Labels constant on block^3 cubes (a coarse organ-like map): down- then up-sampling keeps most of it."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 5, size=[-(-side // block) for side in shape], dtype=np.uint8)
    return np.kron(coarse, np.ones((block,) * 3, dtype=np.uint8))[:shape[0], :shape[1], :shape[2]]


@pytest.mark.parametrize("axis", sorted(AXES))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("extra", [0, 13])
def test_pad_round_trip_is_the_identity(axis, shape, extra):
    labels = np.random.default_rng(sum(shape)).integers(0, 7, size=shape, dtype=np.uint8)
    size = max(shape) + extra  # at least the in-plane sides: no information lost
    slices = label_slices(labels, axis, size, "pad")
    back = volume_from_label_slices(slices, axis, shape, "pad")
    assert back.shape == shape and back.dtype == np.uint8
    np.testing.assert_array_equal(back, labels)


@pytest.mark.parametrize("axis", sorted(AXES))
def test_resize_round_trip_is_the_identity_when_upsampling(axis):
    labels = np.random.default_rng(3).integers(0, 4, size=(12, 7, 5), dtype=np.uint8)
    back = volume_from_label_slices(label_slices(labels, axis, 24, "resize"), axis, labels.shape, "resize")
    np.testing.assert_array_equal(back, labels)


@pytest.mark.parametrize("policy", ["pad", "resize"])
@pytest.mark.parametrize("axis", sorted(AXES))
def test_downsampled_round_trip_keeps_most_voxels(axis, policy):
    labels = blocky((48, 40, 36), seed=1)
    slices = label_slices(labels, axis, 24, policy)
    back = volume_from_label_slices(slices, axis, labels.shape, policy)
    assert back.shape == labels.shape and back.dtype == np.uint8
    assert np.mean(back == labels) >= 0.9
    assert set(np.unique(back)) <= set(np.unique(labels))  # nearest neighbour: no invented labels


@pytest.mark.parametrize("axis", sorted(AXES))
def test_crop_fills_the_cut_border_with_background(axis):
    shape = (30, 20, 12)
    labels = np.full(shape, 3, dtype=np.uint8)
    back = volume_from_label_slices(label_slices(labels, axis, 50, "crop"), axis, shape, "crop")
    assert back.shape == shape and back.dtype == np.uint8
    assert set(np.unique(back)) == {0, 3}
    # Each slice keeps a centred min-side square; the rest of the longer in-plane side comes back as 0.
    first, second = (side for i, side in enumerate(shape) if i != AXES[axis])
    expected_kept = min(first, second) ** 2 * shape[AXES[axis]]
    assert int(np.count_nonzero(back)) == expected_kept
    kept = np.count_nonzero(back == 3, axis=AXES[axis])  # (first, second) map of kept columns
    assert np.all(np.isin(kept, (0, shape[AXES[axis]])))


def test_crop_keeps_the_centre_exactly():
    labels = np.random.default_rng(5).integers(1, 6, size=(21, 13, 4), dtype=np.uint8)
    back = volume_from_label_slices(label_slices(labels, "axial", 13, "crop"), "axial", labels.shape, "crop")
    np.testing.assert_array_equal(back[4:17], labels[4:17])  # x cut from 21 to the centred 13
    assert not back[:4].any() and not back[17:].any()


def test_axial_slice_layout_is_undone_by_hand():
    # One voxel at the patient's far right, most anterior, top slice: on display it is row 0, column 0.
    slices = np.zeros((3, 8, 8), dtype=np.uint8)
    slices[2, 0, 0] = 5
    back = volume_from_label_slices(slices, "axial", (8, 8, 3), "pad")
    expected = np.zeros((8, 8, 3), dtype=np.uint8)
    expected[7, 7, 2] = 5
    np.testing.assert_array_equal(back, expected)


@pytest.mark.parametrize("slices, axis, shape, policy, message", [
    (np.zeros((4, 8, 8), np.uint8), "axial", (8, 8, 5), "pad", "expected"),
    (np.zeros((5, 8, 6), np.uint8), "axial", (8, 8, 5), "pad", "expected"),
    (np.zeros((5, 8, 8), np.uint8), "oblique", (8, 8, 5), "pad", "axis"),
    (np.zeros((5, 8, 8), np.uint8), "axial", (8, 8, 5), "stretch", "policy"),
    (np.zeros((5, 8, 8), np.float32), "axial", (8, 8, 5), "pad", "integers"),
    (np.full((5, 8, 8), 300, np.int32), "axial", (8, 8, 5), "pad", "0..255"),
])
def test_bad_input_is_refused(slices, axis, shape, policy, message):
    with pytest.raises(ValueError, match=message):
        volume_from_label_slices(slices, axis, shape, policy)
