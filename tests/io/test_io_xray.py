"""X-ray DICOMs (and PNG/TIFF/NPY) read with their geometry; compressed syntaxes; bad input."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, JPEGLSLossless, RLELossless

from napari_xvr.errors import XvrInputError
from napari_xvr.geometry import Intrinsics
from napari_xvr.io import read_xray
from napari_xvr.io.dicom_write import write_xray_dicom


def _edit(path, **changes):
    """Rewrite a DICOM with tags set (value) or deleted (None)."""
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path)
    return path


def test_single_frame_geometry_round_trip(xray_dicom, xray_frames, intrinsics):
    xray = read_xray(xray_dicom)
    np.testing.assert_array_equal(xray.image, xray_frames[0].astype(np.float32))
    assert xray.image.dtype == np.float32 and xray.frames is None
    assert xray.intrinsics == intrinsics  # non-square pixels, x0/y0 sign kept through DICOM
    assert (xray.primary_angle, xray.secondary_angle, xray.source_to_patient) == (12.0, -4.0, 780.0)
    assert not xray.pf_to_af and xray.stem == "single"
    assert xray.header["NumberOfFrames"] == 1


def test_tags_as_written(xray_dicom):
    ds = pydicom.dcmread(xray_dicom)
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.7, 0.5]  # row (dely), column (delx)
    assert [float(v) for v in ds.DetectorActiveOrigin] == [-2.0, -3.0]  # row = y0, column = -x0


@pytest.mark.parametrize(
    ("reducefn", "expected"),
    [
        ("max", lambda f: f.max(0)),
        ("sum", lambda f: f.sum(0)),
        (None, lambda f: f.max(0)),
        (0, lambda f: f[0]),
        ("2", lambda f: f[2]),
        (-1, lambda f: f[2]),
    ],
)
def test_multiframe_reduction(multiframe_dicom, xray_frames, reducefn, expected):
    xray = read_xray(multiframe_dicom, reducefn)
    frames = xray_frames.astype(np.float32)
    np.testing.assert_array_equal(xray.image, expected(frames))
    np.testing.assert_array_equal(xray.frames, frames)
    assert xray.header["NumberOfFrames"] == 3 and xray.intrinsics.height == 40


@pytest.mark.parametrize(
    ("reducefn", "pattern"),
    [
        (3, r"multi.dcm: --reducefn 3 is out of range; the file has 3 frames \(use 0..2, max or sum\)"),
        (-4, "out of range"),
        ("mean", r"--reducefn 'mean': use max, sum or a frame index"),
    ],
)
def test_multiframe_bad_reducefn(multiframe_dicom, reducefn, pattern):
    with pytest.raises(XvrInputError, match=pattern):
        read_xray(multiframe_dicom, reducefn)


def test_pixel_spacing_wins_over_imager_pixel_spacing(xray_dicom):
    _edit(xray_dicom, PixelSpacing=["0.9", "0.3"])
    intr = read_xray(xray_dicom).intrinsics
    assert (intr.dely, intr.delx) == (0.9, 0.3)
    _edit(xray_dicom, PixelSpacing=None)
    intr = read_xray(xray_dicom).intrinsics
    assert (intr.dely, intr.delx) == (0.7, 0.5)


def test_detector_active_origin_sign(xray_dicom):
    _edit(xray_dicom, DetectorActiveOrigin=["5", "7"])  # (row, column) offsets in mm
    intr = read_xray(xray_dicom).intrinsics
    assert (intr.x0, intr.y0) == (-7.0, 5.0)
    _edit(xray_dicom, DetectorActiveOrigin=None)
    intr = read_xray(xray_dicom).intrinsics
    assert (intr.x0, intr.y0) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("orientation", "primary", "flipped"),
    [
        (["P", "F"], -20.0, True),
        (["P", "F"], 20.0, False),
        (["A", "F"], -20.0, False),
        (None, -20.0, False),
    ],
)
def test_pf_to_af_flip(tmp_path, xray_frames, intrinsics, orientation, primary, flipped):
    path = write_xray_dicom(
        tmp_path / "pf.dcm", xray_frames, intrinsics, primary, 0.0, 800.0, patient_orientation=orientation
    )
    xray = read_xray(path, 1)
    frame = xray_frames[1].astype(np.float32)
    np.testing.assert_array_equal(xray.image, frame[:, ::-1] if flipped else frame)
    assert xray.pf_to_af is flipped
    if flipped:  # every frame flipped, so a later preprocessing of the stack agrees
        np.testing.assert_array_equal(xray.frames, xray_frames[:, :, ::-1].astype(np.float32))


def test_monochrome1_is_inverted(xray_dicom, xray_frames):
    _edit(xray_dicom, PhotometricInterpretation="MONOCHROME1")
    image = read_xray(xray_dicom).image
    frame = xray_frames[0].astype(np.float32)
    np.testing.assert_array_equal(image, frame.max() - frame)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_lossless_compressed_multiframe(multiframe_dicom, xray_frames, intrinsics, syntax):
    from pydicom.pixels.encoders.base import get_encoder

    if not get_encoder(syntax).is_available:
        pytest.skip(f"no {syntax.name} encoder installed (JPEG-LS needs pyjpegls)")
    ds = pydicom.dcmread(multiframe_dicom)
    ds.compress(syntax)
    ds.save_as(multiframe_dicom)
    assert pydicom.dcmread(multiframe_dicom).file_meta.TransferSyntaxUID == syntax
    xray = read_xray(multiframe_dicom, 1)
    np.testing.assert_array_equal(xray.image, xray_frames[1].astype(np.float32))
    assert xray.intrinsics == intrinsics and xray.header["TransferSyntaxUID"] == syntax


def test_jpeg_baseline(tmp_path, xray_frames, intrinsics):
    """8-bit JPEG baseline made with Pillow and encapsulated; pydicom's plugins decode it."""
    from PIL import Image
    from pydicom.encaps import encapsulate

    pixels = (xray_frames[0] / xray_frames[0].max() * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    path = write_xray_dicom(tmp_path / "jpeg.dcm", pixels, intrinsics)
    ds = pydicom.dcmread(path)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(path, enforce_file_format=True)
    xray = read_xray(path)
    assert xray.image.shape == (40, 50)
    assert np.abs(xray.image - pixels).mean() < 3.0  # lossy, but the same picture


def test_overrides_replace_header_values(xray_dicom):
    intr = read_xray(xray_dicom, sdd=900.0, delx=0.25, x0=-1.0).intrinsics
    assert intr == Intrinsics(sdd=900.0, height=40, width=50, delx=0.25, dely=0.7, x0=-1.0, y0=-2.0)
    intr = read_xray(xray_dicom, dely=0.4, y0=6.0).intrinsics
    assert (intr.sdd, intr.delx, intr.dely, intr.x0, intr.y0) == (1020.0, 0.5, 0.4, 3.0, 6.0)


def test_missing_sdd(xray_dicom):
    _edit(xray_dicom, DistanceSourceToDetector=None)
    with pytest.raises(XvrInputError) as err:
        read_xray(xray_dicom)
    message = str(err.value)
    assert str(xray_dicom) in message and "DistanceSourceToDetector (0018,1110)" in message
    assert "pass --sdd" in message
    assert read_xray(xray_dicom, sdd=1100.0).intrinsics.sdd == 1100.0


def test_missing_spacing(xray_dicom):
    _edit(xray_dicom, ImagerPixelSpacing=None)
    with pytest.raises(
        XvrInputError,
        match=r"single.dcm: neither PixelSpacing \(0028,0030\) nor "
        r"ImagerPixelSpacing \(0018,1164\).*pass --delx \(and --dely\)",
    ):
        read_xray(xray_dicom)
    intr = read_xray(xray_dicom, delx=0.8).intrinsics
    assert (intr.delx, intr.dely) == (0.8, 0.8)
    _edit(xray_dicom, PixelSpacing="0.6")  # a single value: square pixels
    assert (read_xray(xray_dicom).intrinsics.delx, read_xray(xray_dicom).intrinsics.dely) == (0.6, 0.6)


def test_non_dicom_and_truncated_files(tmp_path, xray_dicom):
    text = tmp_path / "notes.dcm"
    text.write_text("this is not an image\n")
    with pytest.raises(XvrInputError, match=r"notes.dcm: not a DICOM file .*--sdd and --delx"):
        read_xray(text)
    data = xray_dicom.read_bytes()
    cases = {
        "cut_pixels.dcm": (data[: len(data) - 1000], r"pixel data does not fit .* probably truncated"),
        "cut_header.dcm": (data[:200], "ends after its file meta header"),
        "cut_preamble.dcm": (data[:100], "not a DICOM file"),
    }
    for name, (content, pattern) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(XvrInputError, match=pattern) as err:
            read_xray(path)
        assert name in str(err.value) and "\n" not in str(err.value)


def test_dicom_without_pixel_data(xray_dicom):
    _edit(xray_dicom, PixelData=None)
    with pytest.raises(
        XvrInputError,
        match=r"single.dcm: the DICOM has no pixel data \(PixelData "
        r"\(7FE0,0010\) is missing",
    ):
        read_xray(xray_dicom)


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(XvrInputError, match="no such X-ray file"):
        read_xray(tmp_path / "nothing.dcm")
    with pytest.raises(XvrInputError, match="is a folder; give one X-ray file"):
        read_xray(tmp_path)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".npy"])
def test_plain_images_need_intrinsics(tmp_path, xray_frames, suffix):
    import imageio.v3 as iio

    path = tmp_path / f"xray{suffix}"
    if suffix == ".npy":
        np.save(path, xray_frames[0].astype(np.float32))
    else:
        iio.imwrite(path, xray_frames[0])  # 16-bit grey
    with pytest.raises(
        XvrInputError,
        match=rf"a \{suffix} image carries no detector geometry; "
        "pass --sdd and --delx",
    ):
        read_xray(path)
    with pytest.raises(XvrInputError, match="pass --delx"):
        read_xray(path, sdd=1000.0)
    xray = read_xray(path, sdd=1000.0, delx=0.4, x0=2.0)
    np.testing.assert_array_equal(xray.image, xray_frames[0].astype(np.float32))
    assert xray.intrinsics == Intrinsics(sdd=1000.0, height=40, width=50, delx=0.4, dely=0.4, x0=2.0)
    assert xray.stem == "xray"


def test_plain_image_errors(tmp_path):
    import imageio.v3 as iio

    rgb = tmp_path / "rgb.png"
    ramp = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30) % 50
    iio.imwrite(rgb, np.stack([ramp + v for v in (30, 60, 90)], -1).astype(np.uint8))
    assert read_xray(rgb, sdd=1000.0, delx=1.0).image.shape == (20, 30)
    np.save(tmp_path / "nan.npy", np.full((20, 30), np.nan, np.float32))
    with pytest.raises(XvrInputError, match="NaN or infinite"):
        read_xray(tmp_path / "nan.npy", sdd=1000.0, delx=1.0)
    broken = tmp_path / "broken.png"
    broken.write_bytes(rgb.read_bytes()[:40])
    with pytest.raises(XvrInputError, match=r"broken.png: not a readable \.png image") as err:
        read_xray(broken, sdd=1000.0, delx=1.0)
    assert "\n" not in str(err.value)
    stack = tmp_path / "frames.npy"
    np.save(stack, np.arange(2 * 20 * 30, dtype=np.float32).reshape(2, 20, 30))
    np.testing.assert_array_equal(
        read_xray(stack, 1, sdd=1000.0, delx=1.0).image,
        np.arange(600, 1200, dtype=np.float32).reshape(20, 30),
    )
