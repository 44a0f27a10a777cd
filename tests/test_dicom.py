import json
import re

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.pixels.decoders import JPEG2000LosslessDecoder, JPEGLSLosslessDecoder
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from medprobe.io.dicom import DicomReadError, read_dicom_image
from medprobe.io.images import Image


def shipped(name: str) -> str:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} is missing"
    return path


def write_dicom(path, stored: np.ndarray, photometric="MONOCHROME2", bits_stored=12, **tags):
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.Modality = "OT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.PixelData = stored.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


# --- pydicom's shipped files ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm"]
)
def test_mr_encodings_give_identical_windowed_pixels(name):
    reference = read_dicom_image(shipped("MR_small.dcm"))
    image = read_dicom_image(shipped(name))
    assert isinstance(image, Image)
    assert image.pixels.dtype == np.float32 and image.pixels.shape == (64, 64)
    assert 0.0 <= image.pixels.min() and image.pixels.max() <= 1.0
    np.testing.assert_array_equal(image.pixels, reference.pixels)
    assert image.meta["voi_source"] == "tags"
    assert (image.meta["window_center"], image.meta["window_width"]) == (600.0, 1600.0)
    assert image.meta["modality"] == "MR"
    json.dumps(image.meta)


def test_ct_small_applies_rescale_and_falls_back_to_percentiles():
    # CT_small.dcm ships uncompressed (Explicit VR Little Endian) in pydicom 3.0.2, so it decodes
    # without any JPEG 2000 plugin.
    image = read_dicom_image(shipped("CT_small.dcm"))
    assert image.pixels.shape == (128, 128)
    assert image.meta["rescale_slope"] == 1.0 and image.meta["rescale_intercept"] == -1024.0
    assert image.meta["window_center"] is None and image.meta["voi_source"] == "percentile"
    assert image.meta["pixel_spacing"] == pytest.approx([0.661468, 0.661468])
    assert image.pixels.min() == 0.0 and image.pixels.max() == 1.0


def test_jpeg2000_decodes_when_a_plugin_is_available_else_reports_why():
    path = shipped("MR_small_jp2klossless.dcm")
    if JPEG2000LosslessDecoder.is_available:
        reference = read_dicom_image(shipped("MR_small.dcm"))
        np.testing.assert_array_equal(read_dicom_image(path).pixels, reference.pixels)
    else:  # no Pillow-with-OpenJPEG, pylibjpeg or gdcm: the failure must still be a clear one
        with pytest.raises(DicomReadError, match="could not be decoded"):
            read_dicom_image(path)


@pytest.mark.skipif(JPEGLSLosslessDecoder.is_available, reason="a JPEG-LS decoder is installed")
def test_missing_jpeg_ls_decoder_is_a_dicom_read_error():
    path = shipped("MR_small_jpeg_ls_lossless.dcm")
    with pytest.raises(DicomReadError, match="could not be decoded.*JPEG-LS") as error:
        read_dicom_image(path)
    assert path in str(error.value)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("MR_truncated.dcm", "could not be decoded.*less than expected"),
        ("examples_rgb_color.dcm", "RGB is not grayscale"),
        ("SC_ybr_full_422_uncompressed.dcm", "YBR_FULL_422 is not grayscale"),
        ("examples_palette.dcm", "PALETTE COLOR is not grayscale"),
        ("rtdose.dcm", "multi-frame \\(15 frames\\)"),
        ("rtplan.dcm", "has no pixel data \\(not an image: SOP class RT Plan Storage\\)"),
        ("no_meta.dcm", "not a readable DICOM file"),
        ("badVR.dcm", "invalid or inconsistent header"),
    ],
)
@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")
def test_unusable_shipped_files_raise_with_path_and_reason(name, reason):
    path = shipped(name)
    with pytest.raises(DicomReadError, match=reason) as error:
        read_dicom_image(path)
    assert str(error.value).startswith(path)


def test_truncated_and_non_dicom_files_raise_dicom_read_error(tmp_path):
    whole = open(shipped("MR_small.dcm"), "rb").read()
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(whole[: len(whole) // 2])
    text = tmp_path / "notes.dcm"
    text.write_text("not a DICOM file\n")
    for path in (truncated, text):
        with pytest.raises(DicomReadError, match=re.escape(str(path))):
            read_dicom_image(path)


# --- files written here with known values --------------------------------------------------


def test_monochrome1_is_inverted_after_windowing(tmp_path):
    ramp = np.tile(np.arange(0, 4096, 64), (8, 1))
    path = write_dicom(tmp_path / "m1.dcm", ramp, photometric="MONOCHROME1")
    image = read_dicom_image(path, voi_fallback="minmax")
    np.testing.assert_allclose(image.pixels[0], 1.0 - np.linspace(0.0, 1.0, 64), atol=1e-6)
    assert image.meta["photometric"] == "MONOCHROME1" and image.meta["voi_source"] == "minmax"


def test_window_tags_follow_the_dicom_linear_formula_after_rescale(tmp_path):
    stored = np.array([[0, 75, 100, 150], [50, 60, 149, 101]])
    path = write_dicom(
        tmp_path / "windowed.dcm",
        stored,
        RescaleSlope=2,
        RescaleIntercept=-100,
        WindowCenter=[100, 40],
        WindowWidth=[201, 400],
    )
    image = read_dicom_image(path)
    # Modality values 2*s - 100; first window c=100, w=201:
    # y = (x - 99.5) / 200 + 0.5, 0 for x <= -0.5, 1 for x > 199.5 (PS3.3 C.11.2.1.2.1).
    expected = [[0.0, 0.2525, 0.5025, 1.0], [0.0025, 0.1025, 0.9925, 0.5125]]
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    assert image.meta["rescale_slope"] == 2.0 and image.meta["rescale_intercept"] == -100.0
    assert (image.meta["window_center"], image.meta["window_width"]) == (100.0, 201.0)
    assert image.meta["voi_source"] == "tags"


def test_rescale_without_window_uses_percentiles_of_modality_values(tmp_path):
    stored = np.arange(1000).reshape(20, 50)
    path = write_dicom(tmp_path / "rescaled.dcm", stored, RescaleSlope=0.5, RescaleIntercept=-1024)
    image = read_dicom_image(path, percentiles=(10, 90))
    modality = stored * 0.5 - 1024
    low, high = np.percentile(modality, (10, 90))
    np.testing.assert_allclose(image.pixels, np.clip((modality - low) / (high - low), 0, 1), atol=1e-6)
    assert image.meta["voi_source"] == "percentile" and image.meta["window_center"] is None
    assert image.meta["rescale_slope"] == 0.5 and image.meta["rescale_intercept"] == -1024.0


def test_constant_image_gives_zeros_without_warnings(tmp_path):
    path = write_dicom(tmp_path / "flat.dcm", np.full((16, 16), 700))
    with np.errstate(all="raise"):
        for policy in ("percentile", "minmax"):
            np.testing.assert_array_equal(read_dicom_image(path, voi_fallback=policy).pixels, 0.0)


def test_unknown_fallback_policy_is_rejected(tmp_path):
    path = write_dicom(tmp_path / "ok.dcm", np.zeros((4, 4)))
    with pytest.raises(ValueError, match="voi_fallback"):
        read_dicom_image(path, voi_fallback="auto")
