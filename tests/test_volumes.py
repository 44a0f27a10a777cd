import json
import random
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pydicom.data
import pytest
from nibabel.orientations import axcodes2ornt, ornt_transform
from nibabel.testing import data_path

from medprobe.io.dicom_series import DicomSeriesError, read_dicom_series
from medprobe.io.images import ImageReadError
from medprobe.io.volumes import Volume, VolumeReadError, read_nifti, read_nifti_labels, resample, write_nifti
from medprobe.io.windowing import CT_WINDOWS, ct_window, mr_percentile_normalise

NIFTI = Path(data_path)
DICOM = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests"
CT5N = DICOM / "98892001" / "CT5N"  # five axial CT slices, 2.5 mm apart, files not in position order
CT2 = DICOM / "77654033" / "CT2"  # 17106 lies 202.5 mm below the other three, which are 1.25 mm apart
MR2 = DICOM / "98892003" / "MR2"  # localizers: three series, each with one axial, sagittal and coronal slice
CT5N_ASCENDING = ["3353", "3023", "2693", "2392", "2062"]  # by ImagePositionPatient z: -1.2375 ... 8.7625


def reorient(img, axcodes):
    """The same image stored in another voxel order (same voxels in space, different array and affine)."""
    return img.as_reoriented(ornt_transform(axcodes2ornt(nib.aff2axcodes(img.affine)), axcodes2ornt(axcodes)))


def assert_same_voxels_in_space(volume: Volume, source: Path):
    """Every canonical voxel holds the value of the source voxel at the same world position."""
    raw = nib.load(source)
    raw_data = np.asanyarray(raw.dataobj).astype(np.float32)
    raw_data[~np.isfinite(raw_data)] = volume.meta["nonfinite_fill"] or 0.0
    grid = np.indices(volume.data.shape).reshape(3, -1)
    to_raw = np.linalg.inv(raw.affine) @ volume.affine
    raw_index = to_raw[:3, :3] @ grid + to_raw[:3, 3:]
    assert np.allclose(raw_index, np.rint(raw_index), atol=1e-4)
    raw_index = np.rint(raw_index).astype(int)
    np.testing.assert_array_equal(volume.data.reshape(-1), raw_data[tuple(raw_index)])


# --- NIfTI -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "axcodes", "spacing", "n_nan"),
    [
        ("anatomical.nii", "LAS", (2.0, 2.0, 2.0), 0),
        ("resampled_anat_moved.nii", "LAS", (4.0, 4.0, 8.0), 153),  # SPM wrote NaN outside the moved image
        ("reoriented_anat_moved.nii", "RAS", (4.0, 4.0, 4.0), 0),
        ("standard.nii.gz", "RAS", (1.0, 3.0, 2.0), 0),
    ],
)
def test_shipped_nifti_becomes_ras_with_header_spacing(name, axcodes, spacing, n_nan):
    volume = read_nifti(NIFTI / name)
    assert nib.aff2axcodes(volume.affine) == ("R", "A", "S")
    assert volume.data.dtype == np.float32 and volume.data.flags.c_contiguous
    assert volume.spacing == pytest.approx(spacing)
    assert volume.meta["original_axcodes"] == list(axcodes)
    assert volume.meta["original_shape"] == list(nib.load(NIFTI / name).shape)
    np.testing.assert_allclose(volume.meta["original_affine"], nib.load(NIFTI / name).affine)
    assert volume.meta["n_nonfinite"] == n_nan and volume.meta["source_format"] == "nifti1"
    if n_nan:  # filled with the smallest finite value, found by hand with np.nanmin
        assert volume.meta["nonfinite_fill"] == pytest.approx(409.30045) == volume.data.min()
    assert_same_voxels_in_space(volume, NIFTI / name)
    json.dumps(volume.meta)


def test_anatomical_las_is_flipped_left_right():
    volume = read_nifti(NIFTI / "anatomical.nii")
    raw = nib.load(NIFTI / "anatomical.nii")
    np.testing.assert_array_equal(volume.data, raw.get_fdata()[::-1])
    # voxel 0 of the canonical x axis is the rightmost raw voxel: raw x index 32 -> 32 - 2 * 32 = -32 mm
    np.testing.assert_allclose(volume.affine, [[2, 0, 0, -32], [0, 2, 0, -40], [0, 0, 2, -16], [0, 0, 0, 1]])
    assert volume.meta["data_dtype"] == "int16"


@pytest.mark.parametrize("axcodes", ["LPS", "RAS", "RPI", "PIR", "SLA"])
def test_reoriented_copies_give_the_identical_canonical_volume(tmp_path, axcodes):
    reference = read_nifti(NIFTI / "anatomical.nii")
    path = tmp_path / f"anatomical_{axcodes}.nii.gz"
    nib.save(reorient(nib.load(NIFTI / "anatomical.nii"), axcodes), path)
    assert "".join(nib.aff2axcodes(nib.load(path).affine)) == axcodes
    volume = read_nifti(path)
    np.testing.assert_array_equal(volume.data, reference.data)
    np.testing.assert_allclose(volume.affine, reference.affine, atol=1e-5)
    assert volume.spacing == reference.spacing
    assert volume.meta["original_axcodes"] == list(axcodes)


@pytest.mark.parametrize(("name", "shape"), [("example4d.nii.gz", (128, 96, 24, 2)), ("example_nifti2.nii.gz",
                                                                                       (32, 20, 12, 2))])
def test_4d_nifti_is_refused_with_file_and_shape(name, shape):
    with pytest.raises(VolumeReadError, match=r"expected a 3-D volume") as error:
        read_nifti(NIFTI / name)
    assert str(NIFTI / name) in str(error.value) and str(shape) in str(error.value)
    assert isinstance(error.value, ImageReadError)


def test_nifti2_and_trailing_singleton_are_read(tmp_path):
    four_d = nib.load(NIFTI / "example_nifti2.nii.gz")
    first = np.asanyarray(four_d.dataobj)[..., :1]  # (32, 20, 12, 1): a 4-D file holding one volume
    path = tmp_path / "one_volume.nii"
    nib.save(nib.Nifti2Image(first, four_d.affine), path)
    volume = read_nifti(path)
    assert volume.meta["source_format"] == "nifti2" and volume.meta["original_shape"] == [32, 20, 12]
    assert volume.data.shape == (32, 20, 12) and nib.aff2axcodes(volume.affine) == ("R", "A", "S")
    assert volume.spacing == pytest.approx((2.0, 2.0, 2.2), abs=1e-5)
    np.testing.assert_array_equal(volume.data, first[::-1, :, :, 0])  # LAS (oblique) -> closest RAS: flip x


def test_unreadable_nifti_files_raise_with_path(tmp_path):
    whole = (NIFTI / "anatomical.nii").read_bytes()
    truncated = tmp_path / "truncated.nii"
    truncated.write_bytes(whole[: len(whole) // 2])
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"not gzip at all" * 100)
    for path, reason in [(truncated, "unreadable"), (garbage, "not a readable NIfTI"),
                         (tmp_path / "missing.nii", "file not found")]:
        with pytest.raises(VolumeReadError, match=reason) as error:
            read_nifti(path)
        assert str(error.value).startswith(str(path))


def test_nonfinite_voxels_are_counted_and_filled_with_the_smallest_finite_value(tmp_path):
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4) + 5.0  # finite minimum 5 (at [0, 0, 0])
    data[0, 0, 0], data[1, 2, 3], data[0, 1, 2] = np.nan, np.inf, -np.inf
    path = tmp_path / "nan.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    volume = read_nifti(path)
    assert volume.meta["n_nonfinite"] == 3 and volume.meta["nonfinite_fill"] == 6.0
    assert volume.data[0, 0, 0] == volume.data[1, 2, 3] == volume.data[0, 1, 2] == 6.0
    assert np.isfinite(volume.data).all() and volume.data[1, 0, 0] == 17.0


def test_scl_slope_and_inter_are_applied_and_recorded(tmp_path):
    stored = np.array([0, 1, 2, 100], dtype=np.int16).reshape(1, 1, 4)
    img = nib.Nifti1Image(stored, np.diag([0.7, 0.7, 3.0, 1.0]))
    img.header.set_slope_inter(2.0, -1024.0)
    path = tmp_path / "scaled.nii"
    nib.save(img, path)
    volume = read_nifti(path)
    np.testing.assert_array_equal(volume.data.ravel(), [-1024.0, -1022.0, -1020.0, -824.0])
    assert (volume.meta["scl_slope"], volume.meta["scl_inter"], volume.meta["data_dtype"]) == (2.0, -1024.0, "int16")
    assert volume.spacing == pytest.approx((0.7, 0.7, 3.0))


def test_labels_share_the_image_grid_or_fail_naming_both_files(tmp_path):
    raw = nib.load(NIFTI / "anatomical.nii")
    image_path = tmp_path / "image_LPS.nii"
    nib.save(reorient(raw, "LPS"), image_path)
    image = read_nifti(image_path)
    labels = (raw.get_fdata() > 60).astype(np.float32) + (raw.get_fdata() > 100)  # 0/1/2 stored as float
    label_path = tmp_path / "labels_LAS.nii.gz"
    nib.save(nib.Nifti1Image(labels, raw.affine), label_path)  # same space, another voxel order
    read = read_nifti_labels(label_path, like=image)
    assert read.data.dtype == np.uint8 and set(np.unique(read.data)) == {0, 1, 2}
    np.testing.assert_array_equal(read.data, (image.data > 60).astype(np.uint8) + (image.data > 100))

    moved = raw.affine.copy()
    moved[:3, 3] += 2.0  # the label file sits 2 mm off the image
    shifted = tmp_path / "shifted.nii"
    nib.save(nib.Nifti1Image(labels, moved), shifted)
    cropped = tmp_path / "cropped.nii"
    nib.save(nib.Nifti1Image(labels[:-1], raw.affine), cropped)
    for path, reason in [(shifted, "label affine differs"), (cropped, "label grid")]:
        with pytest.raises(VolumeReadError, match=reason) as error:
            read_nifti_labels(path, like=image)
        assert str(path) in str(error.value) and str(image_path) in str(error.value)

    fractional = tmp_path / "fractional.nii"
    nib.save(nib.Nifti1Image(labels * 0.5, raw.affine), fractional)
    too_many = tmp_path / "too_many.nii"
    nib.save(nib.Nifti1Image((labels * 200).astype(np.int16), raw.affine), too_many)
    for path, reason in [(fractional, "non-integer"), (too_many, "0..400")]:
        with pytest.raises(VolumeReadError, match=reason):
            read_nifti_labels(path)


def test_prediction_written_back_overlays_an_lps_source_voxel_for_voxel(tmp_path):
    source_path = tmp_path / "source_LPS.nii"
    nib.save(reorient(nib.load(NIFTI / "anatomical.nii"), "LPS"), source_path)
    volume = read_nifti(source_path)
    prediction = (volume.data > 60).astype(np.uint8)  # made on the canonical grid
    original = volume.meta["original_affine"]
    out = write_nifti(prediction, volume.affine, tmp_path / "pred.nii.gz", original_affine=original)
    written, source = nib.load(out), nib.load(source_path)
    assert nib.aff2axcodes(written.affine) == ("L", "P", "S") and written.shape == source.shape
    np.testing.assert_allclose(written.affine, source.affine, atol=1e-5)
    assert written.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), (source.get_fdata() > 60).astype(np.uint8))
    first = out.read_bytes()
    write_nifti(prediction, volume.affine, out, original_affine=original)
    assert out.read_bytes() == first  # byte-identical rewrite

    coarse, _ = resample(volume, (4.0, 4.0, 4.0))
    with pytest.raises(ValueError, match="not on the canonical grid"):
        write_nifti(coarse.data, coarse.affine, tmp_path / "bad.nii", original_affine=original)


def test_resample_linear_for_images_nearest_for_labels():
    ramp = np.broadcast_to(np.array([0.0, 10.0, 20.0], dtype=np.float32), (2, 2, 3)).copy()
    affine = np.array([[1.0, 0, 0, -5], [0, 1, 0, 7], [0, 0, 2, 9], [0, 0, 0, 1]])
    volume = Volume(ramp, affine, (1.0, 1.0, 2.0), {})
    fine, params = resample(volume, (1.0, 1.0, 1.0))
    # output z at 0, 1, ..., 5 mm = input index 0, 0.5, ..., 2.5 (edge value beyond the last centre)
    np.testing.assert_allclose(fine.data[0, 0], [0, 5, 10, 15, 20, 20])
    assert fine.data.dtype == np.float32 and fine.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(fine.affine[:, 2:], [[0, -5], [0, 7], [1, 9], [0, 1]])
    assert params == {"method": "resample", "spacing": [1.0, 1.0, 1.0], "order": 1,
                      "from_spacing": [1.0, 1.0, 2.0], "from_shape": [2, 2, 3], "shape": [2, 2, 6]}
    assert fine.meta["resample"] == params

    labels = Volume(np.array([[[0, 3, 7]]], dtype=np.uint8), np.diag([1.0, 1.0, 3.0, 1.0]), (1.0, 1.0, 3.0), {})
    fine_labels, params = resample(labels, (1.0, 1.0, 1.0), labels=True)
    # input index k / 3 rounded: 0 0 1 1 1 2 2 2 2 (beyond the last centre: edge)
    np.testing.assert_array_equal(fine_labels.data[0, 0], [0, 0, 3, 3, 3, 7, 7, 7, 7])
    assert fine_labels.data.dtype == np.uint8 and params["order"] == 0


# --- DICOM series ----------------------------------------------------------------------------------


def hu(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_ct_series_sorted_by_position_with_spacing_and_affine_from_the_headers():
    volume = read_dicom_series(CT5N)
    assert volume.data.shape == (16, 16, 5) and nib.aff2axcodes(volume.affine) == ("R", "A", "S")
    assert volume.meta["files"] == [str(CT5N / name) for name in CT5N_ASCENDING]
    z = [float(pydicom.dcmread(CT5N / name).ImagePositionPatient[2]) for name in CT5N_ASCENDING]
    assert np.diff(z) == pytest.approx([2.5] * 4)
    assert volume.spacing == pytest.approx((0.488281, 0.488281, 2.5))
    assert volume.meta["slice_spacing"] == pytest.approx(2.5) and volume.meta["slice_spacing_source"] == "positions"
    # IOP (1,0,0 / 0,1,0): columns run to patient left, rows to posterior, i.e. LPS; RAS flips both
    for k, name in enumerate(CT5N_ASCENDING):
        np.testing.assert_array_equal(volume.data[:, :, k], hu(CT5N / name).T[::-1, ::-1])
    assert volume.data.min() == 136 - 1024  # Hounsfield units: smallest stored value plus RescaleIntercept
    # pixel (row 3, column 5) of the top slice, by hand: LPS = IPP + 5 * 0.488281 x + 3 * 0.488281 y
    x, y, zz = -72.199997 + 5 * 0.488281, -143.0 + 3 * 0.488281, 8.7625
    np.testing.assert_allclose(volume.affine @ [15 - 5, 15 - 3, 4, 1], [-x, -y, zz, 1], atol=1e-4)
    assert volume.meta["modality"] == "CT" and volume.meta["rescale_intercepts"] == [-1024.0]
    assert volume.meta["original_axcodes"] == ["L", "P", "S"]
    json.dumps(volume.meta)


def test_gantry_tilt_shears_the_slice_axis(tmp_path):
    # tilted acquisitions keep axial IOP but step each slice's position 0.4 mm in y as well as 2.5 mm in z
    for k, name in enumerate(CT5N_ASCENDING):
        ds = pydicom.dcmread(CT5N / name)
        ds.ImagePositionPatient = [-72.2, -143.0 + 0.4 * k, -1.2375 + 2.5 * k]
        ds.save_as(tmp_path / name)
    volume = read_dicom_series(tmp_path)
    assert volume.meta["slice_spacing"] == pytest.approx(2.5)
    assert volume.spacing[2] == pytest.approx(np.hypot(2.5, 0.4))
    # pixel (row 3, column 5) of slice k: LPS = (-72.2 + 5 * 0.488281, -143 + 3 * 0.488281 + 0.4 k, -1.2375 + 2.5 k)
    for k in range(5):
        lps = [-72.2 + 5 * 0.488281, -143.0 + 3 * 0.488281 + 0.4 * k, -1.2375 + 2.5 * k]
        np.testing.assert_allclose(volume.affine @ [10, 12, k, 1], [-lps[0], -lps[1], lps[2], 1], atol=1e-4)


def test_shuffled_file_order_gives_the_same_volume():
    reference = read_dicom_series(CT5N)
    files = sorted(CT5N.iterdir())
    for seed in range(3):
        random.Random(seed).shuffle(files)
        volume = read_dicom_series(files)
        np.testing.assert_array_equal(volume.data, reference.data)
        np.testing.assert_array_equal(volume.affine, reference.affine)


def test_agrees_with_monai_pydicom_reader(tmp_path):
    from monai.data import PydicomReader

    for name in ("17136", "17166", "17196"):
        shutil.copy(CT2 / name, tmp_path / name)
    reader = PydicomReader(affine_lps_to_ras=True)
    for folder in (CT5N, tmp_path):
        data, meta = reader.get_data(reader.read(folder))
        theirs = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data, dtype=np.float32), meta["affine"]))
        ours = read_dicom_series(folder)
        np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-4)
        np.testing.assert_array_equal(ours.data, theirs.get_fdata(dtype=np.float32))


def test_far_away_slice_in_a_shipped_series_is_a_gap_error():
    volume = read_dicom_series([CT2 / "17196", CT2 / "17136", CT2 / "17166"])
    assert volume.spacing[2] == pytest.approx(1.25, abs=1e-4)
    with pytest.raises(DicomSeriesError, match=r"non-uniform slice spacing: 202\.5 mm.*1\.25, 202\.5") as error:
        read_dicom_series(CT2)
    assert f"between {CT2 / '17106'} and {CT2 / '17136'}" in str(error.value)


def test_missing_slice_is_a_gap_error_naming_its_neighbours(tmp_path):
    for name in CT5N_ASCENDING:
        if name != "2693":
            shutil.copy(CT5N / name, tmp_path / name)
    with pytest.raises(DicomSeriesError, match=r"5 mm between .*3023 and .*2392 \(spacings seen: 2\.5, 5 mm") as error:
        read_dicom_series(tmp_path)
    assert str(error.value).startswith(str(tmp_path))


def test_duplicate_position_is_refused(tmp_path):
    for name in CT5N_ASCENDING:
        shutil.copy(CT5N / name, tmp_path / name)
    shutil.copy(CT5N / "2693", tmp_path / "2693_copy")
    with pytest.raises(DicomSeriesError, match=r"duplicate slice position .*2693"):
        read_dicom_series(tmp_path)


def test_mixed_orientation_is_refused_naming_two_files(tmp_path):
    localizer = "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.136"  # axial, sagittal and coronal slices
    with pytest.raises(DicomSeriesError, match="mixed orientation") as error:
        read_dicom_series(MR2, series_uid=localizer)
    assert sum(str(MR2 / name) in str(error.value) for name in ("4950", "4981", "5011")) == 2

    for name in CT5N_ASCENDING:
        shutil.copy(CT5N / name, tmp_path / name)
    tilted = pydicom.dcmread(tmp_path / "2392")
    tilted.ImageOrientationPatient = [1, 0, 0, 0, 0.9848078, -0.1736482]  # 10 degrees about x
    tilted.save_as(tmp_path / "2392")
    with pytest.raises(DicomSeriesError, match="mixed orientation") as error:
        read_dicom_series(tmp_path)
    assert str(tmp_path / "2392") in str(error.value) and str(tmp_path / "2062") in str(error.value)


def test_several_series_need_a_series_uid():
    files = sorted(CT5N.iterdir()) + [CT2 / "17136", CT2 / "17166", CT2 / "17196"]
    ct5n_uid = str(pydicom.dcmread(CT5N / "2062").SeriesInstanceUID)
    ct2_uid = str(pydicom.dcmread(CT2 / "17136").SeriesInstanceUID)
    with pytest.raises(DicomSeriesError, match="mixes 2 series") as error:
        read_dicom_series(files)
    assert f"{ct5n_uid} (5 files)" in str(error.value) and f"{ct2_uid} (3 files)" in str(error.value)
    assert read_dicom_series(files, series_uid=ct2_uid).data.shape == (16, 16, 3)
    with pytest.raises(DicomSeriesError, match="series 1.2.3 not found"):
        read_dicom_series(files, series_uid="1.2.3")


def test_sagittal_mr_series_written_from_a_shipped_slice(tmp_path):
    # MR1/4919: IOP (0,1,0 / 0,0,-1): columns run posterior, rows inferior, so the normal is
    # (0,1,0) x (0,0,-1) = (-1,0,0) in LPS, i.e. patient right. Stack four slices 3 mm apart along it.
    template = pydicom.dcmread(DICOM / "98892003" / "MR1" / "4919")
    origin = np.array([float(v) for v in template.ImagePositionPatient])
    stored = []
    for k in range(4):
        ds = pydicom.dcmread(DICOM / "98892003" / "MR1" / "4919")
        ds.ImagePositionPatient = (origin + [-3.0 * k, 0, 0]).tolist()
        stored.append(ds.pixel_array + 100 * k)
        ds.PixelData = stored[-1].astype(ds.pixel_array.dtype).tobytes()
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{k}"
        ds.save_as(tmp_path / f"slice{(7 * k) % 4}")  # file names do not follow the position
    volume = read_dicom_series(tmp_path)
    assert volume.meta["original_axcodes"] == ["P", "I", "R"]
    assert volume.data.shape == (4, 16, 16) and volume.spacing == pytest.approx((3.0, 1.367188, 1.367188))
    for k in range(4):  # RAS: x = slice (rightward +3 mm), y = reversed columns, z = reversed rows
        np.testing.assert_array_equal(volume.data[k], stored[k].T[::-1, ::-1])
    np.testing.assert_allclose(volume.affine @ [2, 15, 15, 1], [-origin[0] + 6, -origin[1], origin[2], 1], atol=1e-4)


def test_single_slice_takes_its_thickness():
    volume = read_dicom_series([DICOM / "98892003" / "MR1" / "4919"])
    assert volume.data.shape == (1, 16, 16) and volume.spacing == pytest.approx((10.0, 1.367188, 1.367188))
    assert volume.meta["slice_spacing_source"] == "SliceThickness"


def test_non_dicom_file_in_the_folder_is_named(tmp_path):
    for name in CT5N_ASCENDING:
        shutil.copy(CT5N / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("scanner notes\n")
    with pytest.raises(DicomSeriesError, match="not a readable DICOM file") as error:
        read_dicom_series(tmp_path)
    assert str(error.value).startswith(str(tmp_path / "notes.txt"))
    assert isinstance(error.value, VolumeReadError)


# --- intensity windows -----------------------------------------------------------------------------


@pytest.mark.parametrize(("preset", "middle"), [("lung", -600), ("soft_tissue", 40), ("bone", 300), ("wide", -212)])
def test_ct_windows_map_their_range_onto_unit_interval(preset, middle):
    low, high = CT_WINDOWS[preset]
    out, params = ct_window(np.array([low - 500, low, middle, high, high + 500], dtype=np.float32), preset)
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
    assert out.dtype == np.float32 and params == {"method": "ct_window", "window": preset, "hu_range": [low, high]}


def test_ct_window_custom_range_and_unknown_preset():
    out, params = ct_window(np.array([-100.0, 0.0, 100.0]), (-100, 300))
    np.testing.assert_allclose(out, [0.0, 0.25, 0.5])
    assert params["window"] == "custom" and params["hu_range"] == [-100.0, 300.0]
    with pytest.raises(ValueError, match="unknown CT window 'liver'"):
        ct_window(np.zeros(3), "liver")


def test_mr_percentile_normalisation_against_hand_computed_percentiles():
    values = np.arange(101, dtype=np.float32).reshape(1, 1, 101)  # k-th percentile is exactly k
    out, params = mr_percentile_normalise(values)
    assert params == {"method": "mr_percentile", "percentiles": [5.0, 95.0], "range": [5.0, 95.0]}
    np.testing.assert_allclose(out[0, 0, [0, 5, 50, 95, 100]], [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
    out, params = mr_percentile_normalise(values, percentiles=(10, 90))
    assert params["range"] == [10.0, 90.0] and out[0, 0, 30] == pytest.approx(0.25)
    out, _ = mr_percentile_normalise(np.full((2, 2, 2), 7.0))
    assert out.dtype == np.float32 and not out.any()
