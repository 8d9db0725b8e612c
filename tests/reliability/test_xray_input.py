"""Hostile X-ray input: every bad DICOM/image is refused by name (file, field, value, fix) with one
line, before anything is decoded or allocated; legitimately unusual files still read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, JPEG2000Lossless, RLELossless

from napari_xvr.errors import XvrInputError
from napari_xvr.geometry import Intrinsics
from napari_xvr.io.dicom_write import write_xray_dicom
from napari_xvr.io.xray import read_xray

INTR = Intrinsics(sdd=1020.0, height=64, width=64, delx=6.4, dely=6.4)
#: a value written into a tag and then replaced byte for byte (to store what pydicom refuses to write)
PLACEHOLDER = b"987.6543"


def _image(seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.linspace(100, 3000, 64)[None, :] + rng.integers(0, 500, (64, 64))).astype(np.uint16)


@pytest.fixture()
def single(tmp_path):
    return write_xray_dicom(tmp_path / "base.dcm", _image(), INTR, 0.0, 0.0, 780.0)


@pytest.fixture()
def multi(tmp_path):
    frames = np.stack([_image(0), _image(1), _image(2)])
    return write_xray_dicom(tmp_path / "multi.dcm", frames, INTR, 0.0, 0.0, 780.0)


def _edit(src, dst, **tags):
    ds = pydicom.dcmread(src)
    for key, value in tags.items():
        if callable(value):
            value(ds)
        elif value is None:
            if key in ds:
                delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(dst)
    return dst


def _raw_value(src, dst, keyword, raw: bytes):
    """`keyword` set to bytes no DICOM writer would store (text, non-ASCII)."""
    ds = pydicom.dcmread(src)
    setattr(ds, keyword, PLACEHOLDER.decode())
    ds.save_as(dst)
    data = dst.read_bytes()
    assert data.count(PLACEHOLDER) == 1
    dst.write_bytes(data.replace(PLACEHOLDER, raw.ljust(len(PLACEHOLDER))[: len(PLACEHOLDER)]))
    return dst


def _set_raw(keyword, value):
    """Set a tag to a string value pydicom's setters would validate (e.g. 'nan', '-3')."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import DataElement

    def apply(ds):
        tag = tag_for_keyword(keyword)
        ds[tag] = DataElement(tag, dictionary_VR(tag), value)

    return apply


def _pixels(shape, dtype=np.uint16):
    def apply(ds):
        ds.Rows, ds.Columns = shape
        ds.PixelData = np.arange(shape[0] * shape[1], dtype=dtype).tobytes()

    return apply


def _compressed(syntax, **tags):
    def make(src, dst):
        ds = pydicom.dcmread(src)
        ds.compress(syntax)
        for key, value in tags.items():
            setattr(ds, key, value)
        ds.save_as(dst)
        return dst

    return make


def _mpeg(src, dst):
    ds = pydicom.dcmread(src)
    ds.PixelData = encapsulate([b"\0" * 100])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.save_as(dst)
    return dst


def _unknown_syntax(src, dst):
    ds = pydicom.dcmread(src)
    ds.file_meta.TransferSyntaxUID = "1.2.3.4.5"
    ds.save_as(dst)
    return dst


def _float_pixels(values):
    def apply(ds):
        del ds.PixelData
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 32, 31
        ds.FloatPixelData = values.astype(np.float32).tobytes()

    return apply


def _nan_float():
    values = np.random.default_rng(0).random((64, 64))
    values[5, 5] = np.nan
    return _float_pixels(values)


def _edited(**tags):
    return lambda src, dst: _edit(src, dst, **tags)


def _raw(keyword, raw):
    return lambda src, dst: _raw_value(src, dst, keyword, raw)


# (name, source fixture, maker, words the message must hold)
REFUSED = [
    # NumberOfFrames against the pixel data
    ("frames_fewer_than_data", "multi", _edited(NumberOfFrames=2), ["NumberOfFrames", "is 2", "3 frames"]),
    ("frames_one_but_data_three", "multi", _edited(NumberOfFrames=1), ["NumberOfFrames", "3 frames"]),
    ("frames_more_than_data", "multi", _edited(NumberOfFrames=5), ["NumberOfFrames 5", "truncated"]),
    ("frames_zero", "multi", _edited(raw=_set_raw("NumberOfFrames", "0")), ["NumberOfFrames", "is 0"]),
    ("frames_negative", "multi", _edited(raw=_set_raw("NumberOfFrames", "-3")), ["NumberOfFrames", "-3"]),
    ("frames_text", "single", _raw("NumberOfFrames", b"three"), ["NumberOfFrames", "'three'"]),
    ("frames_on_single_frame", "single", _edited(NumberOfFrames=3), ["NumberOfFrames 3", "8192"]),
    # Rows/Columns against the pixel data, and their size
    ("rows_more_than_data", "single", _edited(Rows=80), ["Rows 80", "needs 10240"]),
    ("rows_fewer_than_data", "single", _edited(Rows=32), ["2 frames of 32 x 64", "NumberOfFrames"]),
    ("columns_fewer_than_data", "single", _edited(Columns=32), ["64 x 32", "NumberOfFrames"]),
    ("rows_zero", "single", _edited(raw=_set_raw("Rows", 0)), ["Rows (0028,0010) is 0"]),
    ("rows_columns_huge", "single", _edited(Rows=65535, Columns=65535), ["Rows (0028,0010) is 65535"]),
    ("image_1x1", "single", _edited(raw=_pixels((1, 1))), ["Rows (0028,0010) is 1", "8 to 16384"]),
    ("image_2x5", "single", _edited(raw=_pixels((2, 5))), ["Rows (0028,0010) is 2"]),
    ("image_64x4", "single", _edited(raw=_pixels((64, 4))), ["Columns (0028,0011) is 4"]),
    ("rows_missing", "single", _edited(Rows=None), ["Rows (0028,0010) is missing"]),
    ("no_pixel_data", "single", _edited(PixelData=None), ["PixelData (7FE0,0010) is missing"]),
    # the pixel module
    ("bits_allocated_12", "single", _edited(BitsAllocated=12), ["BitsAllocated (0028,0100) is 12"]),
    ("bits_allocated_0", "single", _edited(BitsAllocated=0), ["BitsAllocated (0028,0100) is 0"]),
    (
        "bits_allocated_32_on_16_bit_data",
        "single",
        _edited(BitsAllocated=32, BitsStored=32, HighBit=31),
        ["BitsAllocated 32", "needs 16384"],
    ),
    ("bits_stored_above_allocated", "single", _edited(BitsStored=20), ["BitsStored (0028,0101) is 20"]),
    (
        "bits_allocated_missing",
        "single",
        _edited(BitsAllocated=None),
        ["BitsAllocated (0028,0100) is missing"],
    ),
    ("samples_per_pixel_0", "single", _edited(SamplesPerPixel=0), ["SamplesPerPixel (0028,0002) is 0"]),
    (
        "samples_per_pixel_3_monochrome",
        "single",
        _edited(SamplesPerPixel=3),
        ["PhotometricInterpretation", "SamplesPerPixel 3"],
    ),
    (
        "samples_per_pixel_missing",
        "single",
        _edited(SamplesPerPixel=None),
        ["SamplesPerPixel (0028,0002) is missing"],
    ),
    (
        "pixel_representation_2",
        "single",
        _edited(PixelRepresentation=2),
        ["PixelRepresentation (0028,0103) is 2"],
    ),
    (
        "palette_color",
        "single",
        _edited(PhotometricInterpretation="PALETTE COLOR"),
        ["'PALETTE COLOR'", "greyscale"],
    ),
    (
        "rgb_label_on_grey_data",
        "single",
        _edited(PhotometricInterpretation="RGB"),
        ["'RGB'", "SamplesPerPixel 1"],
    ),
    (
        "photometric_missing",
        "single",
        _edited(PhotometricInterpretation=None),
        ["PhotometricInterpretation (0028,0004) is missing"],
    ),
    ("float_pixels_nan", "single", _edited(raw=_nan_float()), ["NaN or infinite"]),
    ("blank", "single", _edited(PixelData=np.full((64, 64), 9, np.uint16).tobytes()), ["every pixel is 9"]),
    # transfer syntaxes and compressed data
    ("unknown_transfer_syntax", "single", _unknown_syntax, ["TransferSyntaxUID (0002,0010) '1.2.3.4.5'"]),
    ("video_transfer_syntax", "single", _mpeg, ["MPEG2", "uncompressed"]),
    (
        "rle_frames_huge",
        "multi",
        _compressed(RLELossless, NumberOfFrames=100000),
        ["compressed PixelData holds 3 frames", "is 100000"],
    ),
    ("rle_frames_fewer", "multi", _compressed(RLELossless, NumberOfFrames=2), ["holds 3 frames", "is 2"]),
    ("j2k_frames_more", "multi", _compressed(JPEG2000Lossless, NumberOfFrames=5), ["holds 3 frames", "is 5"]),
    (
        "rle_rows_columns_huge",
        "multi",
        _compressed(RLELossless, Rows=16000, Columns=16000),
        ["16000 x 16000 x 3", "pixels"],
    ),
    # geometry tags
    (
        "sdd_zero",
        "single",
        _edited(raw=_set_raw("DistanceSourceToDetector", "0")),
        ["DistanceSourceToDetector (0018,1110) 0 mm"],
    ),
    (
        "sdd_negative",
        "single",
        _edited(raw=_set_raw("DistanceSourceToDetector", "-1020")),
        ["DistanceSourceToDetector", "-1020"],
    ),
    (
        "sdd_nan",
        "single",
        _edited(raw=_set_raw("DistanceSourceToDetector", "nan")),
        ["DistanceSourceToDetector", "nan"],
    ),
    (
        "sdd_huge",
        "single",
        _edited(raw=_set_raw("DistanceSourceToDetector", "1e12")),
        ["DistanceSourceToDetector", "1e+12"],
    ),
    (
        "sdd_tiny",
        "single",
        _edited(raw=_set_raw("DistanceSourceToDetector", "1e-9")),
        ["DistanceSourceToDetector", "1e-09"],
    ),
    (
        "sdd_two_values",
        "single",
        _edited(raw=_set_raw("DistanceSourceToDetector", "1020\\900")),
        ["DistanceSourceToDetector", "holds 2 values"],
    ),
    (
        "sdd_text",
        "single",
        _raw("DistanceSourceToDetector", b"far"),
        ["DistanceSourceToDetector", "'far'", "--sdd"],
    ),
    ("sdd_with_unit", "single", _raw("DistanceSourceToDetector", b"1020 mm"), ["'1020 mm'", "not a number"]),
    (
        "sdd_non_ascii",
        "single",
        _raw("DistanceSourceToDetector", "1020µm".encode("latin-1")),
        ["DistanceSourceToDetector", "not a number"],
    ),
    (
        "sdd_missing",
        "single",
        _edited(DistanceSourceToDetector=None),
        ["DistanceSourceToDetector (0018,1110) is missing", "--sdd"],
    ),
    (
        "spacing_zero",
        "single",
        _edited(raw=_set_raw("ImagerPixelSpacing", "0\\0")),
        ["ImagerPixelSpacing (0018,1164) 0 mm"],
    ),
    (
        "spacing_negative",
        "single",
        _edited(raw=_set_raw("ImagerPixelSpacing", "-1\\-1")),
        ["ImagerPixelSpacing", "-1 mm"],
    ),
    (
        "spacing_nan",
        "single",
        _edited(raw=_set_raw("ImagerPixelSpacing", "nan\\nan")),
        ["ImagerPixelSpacing", "not finite"],
    ),
    (
        "spacing_inf",
        "single",
        _edited(raw=_set_raw("ImagerPixelSpacing", "inf\\1")),
        ["ImagerPixelSpacing", "not finite"],
    ),
    (
        "spacing_huge",
        "single",
        _edited(raw=_set_raw("ImagerPixelSpacing", "1e12\\1e12")),
        ["ImagerPixelSpacing", "1e+12"],
    ),
    (
        "spacing_tiny",
        "single",
        _edited(raw=_set_raw("ImagerPixelSpacing", "1e-12\\1e-12")),
        ["ImagerPixelSpacing", "1e-12"],
    ),
    (
        "spacing_three_values",
        "single",
        _edited(raw=_set_raw("ImagerPixelSpacing", "1\\1\\1")),
        ["ImagerPixelSpacing", "holds 3 values"],
    ),
    ("spacing_text", "single", _raw("ImagerPixelSpacing", b"a\\b"), ["ImagerPixelSpacing", "not numbers"]),
    (
        "pixel_spacing_bad_imager_good",
        "single",
        _edited(raw=_set_raw("PixelSpacing", "0\\0")),
        ["PixelSpacing (0028,0030) 0 mm"],
    ),
    ("spacing_missing", "single", _edited(ImagerPixelSpacing=None), ["neither PixelSpacing", "--delx"]),
    (
        "origin_nan",
        "single",
        _edited(raw=_set_raw("DetectorActiveOrigin", "nan\\0")),
        ["DetectorActiveOrigin", "not finite"],
    ),
    (
        "origin_three_values",
        "single",
        _edited(raw=_set_raw("DetectorActiveOrigin", "1\\2\\3")),
        ["DetectorActiveOrigin", "holds 3 values"],
    ),
    (
        "origin_huge",
        "single",
        _edited(raw=_set_raw("DetectorActiveOrigin", "1e30\\0")),
        ["DetectorActiveOrigin", "principal point"],
    ),
    # what the file is
    ("ct_slice", "single", _edited(Modality="CT"), ["Modality CT", "not an X-ray projection"]),
    (
        "dicomdir_sop_class",
        "single",
        _edited(raw=lambda ds: setattr(ds.file_meta, "MediaStorageSOPClassUID", "1.2.840.10008.1.3.10")),
        ["DICOMDIR"],
    ),
]


@pytest.mark.parametrize(("name", "source", "make", "words"), REFUSED, ids=[c[0] for c in REFUSED])
def test_bad_dicom_is_refused_by_name(request, tmp_path, name, source, make, words):
    src = request.getfixturevalue(source)
    bad = make(src, tmp_path / f"{name}.dcm")
    with pytest.raises(XvrInputError) as err:
        read_xray(bad)
    message = str(err.value)
    assert f"{name}.dcm" in message and "\n" not in message, message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("empty.dcm", b"", ["not a DICOM file"]),
        ("text.dcm", b"hello, this is not an image\n", ["not a DICOM file"]),
        (
            "random.bin",
            bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)),
            ["not a DICOM file"],
        ),
        ("png_named.dcm", b"\x89PNG\r\n\x1a\n" + b"\0" * 200, ["not a DICOM file", "PNG/TIFF/NPY"]),
    ],
)
def test_files_that_are_not_dicom(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(XvrInputError) as err:
        read_xray(path)
    assert name in str(err.value) and all(w in str(err.value) for w in words)


def test_truncated_folder_and_dicomdir(tmp_path, single):
    data = single.read_bytes()
    for name, content, word in (
        ("half.dcm", data[: len(data) // 2], "truncated"),
        ("header_only.dcm", data[:300], "ends after its file meta header"),
    ):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(XvrInputError, match=word):
            read_xray(tmp_path / name)
    (tmp_path / "folder.dcm").mkdir()
    with pytest.raises(XvrInputError, match="is a folder"):
        read_xray(tmp_path / "folder.dcm")
    from pydicom.data import get_testdata_file

    dicomdir = tmp_path / "DICOMDIR"
    dicomdir.write_bytes(Path(get_testdata_file("DICOMDIR")).read_bytes())
    with pytest.raises(XvrInputError, match="DICOMDIR.*not an image; give one of the X-ray files"):
        read_xray(dicomdir)


@pytest.mark.parametrize(
    ("reducefn", "words"),
    [
        (3, ["--reducefn 3 is out of range", "3 frames"]),
        (-4, ["--reducefn -4"]),
        (10**30, ["out of range"]),
        (1.5, ["--reducefn 1.5"]),
        ("median", ["--reducefn 'median'"]),
    ],
)
def test_frame_index_out_of_range(multi, reducefn, words):
    with pytest.raises(XvrInputError) as err:
        read_xray(multi, reducefn)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_frame_index_beyond_a_single_frame(single):
    with pytest.raises(XvrInputError, match="--reducefn 5 is out of range; the file has 1 frame"):
        read_xray(single, 5)
    assert read_xray(single, 0).image.shape == read_xray(single, -1).image.shape == (64, 64)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"sdd": 1e12}, ["--sdd 1e+12", "plausible"]),
        ({"sdd": 0.5}, ["--sdd 0.5"]),
        ({"delx": 1e-9}, ["--delx 1e-09"]),
        ({"delx": 1.0, "dely": 5000.0}, ["--dely 5000"]),
        ({"x0": 1e9}, ["--x0 1e+09", "principal point"]),
    ],
)
def test_implausible_options(single, overrides, words):
    with pytest.raises(XvrInputError) as err:
        read_xray(single, **overrides)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_options_replace_unreadable_header_values(single, tmp_path):
    """A bad tag the user overrides is not used, so it is not refused."""
    bad_sdd = _raw_value(single, tmp_path / "sdd.dcm", "DistanceSourceToDetector", b"far")
    assert read_xray(bad_sdd, sdd=1000.0).intrinsics.sdd == 1000.0
    bad_spacing = _raw_value(single, tmp_path / "sp.dcm", "ImagerPixelSpacing", b"a\\b")
    intr = read_xray(bad_spacing, delx=1.0, dely=1.5).intrinsics
    assert (intr.delx, intr.dely) == (1.0, 1.5)


def test_unusual_but_valid_dicoms_still_read(single, multi, tmp_path):
    image = _image().astype(np.float32)
    signed = _edit(
        single,
        tmp_path / "signed.dcm",
        PixelRepresentation=1,
        PixelData=(_image().astype(np.int16) - 2000).tobytes(),
    )
    np.testing.assert_array_equal(read_xray(signed).image, image - 2000)
    floats = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    np.testing.assert_array_equal(
        read_xray(_edit(single, tmp_path / "f.dcm", raw=_float_pixels(floats))).image, floats
    )
    mono1 = _edit(single, tmp_path / "m1.dcm", PhotometricInterpretation="MONOCHROME1")
    np.testing.assert_array_equal(read_xray(mono1).image, image.max() - image)
    rgb = np.stack([_image()] * 3, -1)
    colour = _edit(
        single,
        tmp_path / "rgb.dcm",
        SamplesPerPixel=3,
        PhotometricInterpretation="RGB",
        PlanarConfiguration=0,
        PixelData=rgb.tobytes(),
    )
    np.testing.assert_array_equal(read_xray(colour).image, image)
    small = (_image() // 16).astype(np.uint8)
    eight = _edit(
        single, tmp_path / "u8.dcm", BitsAllocated=8, BitsStored=8, HighBit=7, PixelData=small.tobytes()
    )
    np.testing.assert_array_equal(read_xray(eight).image, small.astype(np.float32))
    named = _edit(single, tmp_path / "Patient Ünïcode", PatientName="Müller^Zoë")
    assert read_xray(named).image.shape == (64, 64)
    for syntax in (RLELossless, JPEG2000Lossless):
        packed = _compressed(syntax)(multi, tmp_path / f"{syntax.name[:3]}.dcm")
        assert read_xray(packed, 2).image.shape == (64, 64)
    sid = _edit(single, tmp_path / "sid.dcm", raw=_set_raw("DistanceSourceToPatient", "2000"))
    assert read_xray(sid).source_to_patient == 2000.0  # `register dicom` refuses it, `fixed` ignores it
    assert read_xray(_edit(single, tmp_path / "square.dcm", ImagerPixelSpacing="0.6")).intrinsics.dely == 0.6


def test_plain_images_too_small_or_implausible(tmp_path):
    np.save(tmp_path / "tiny.npy", np.arange(10, dtype=np.float32).reshape(2, 5))
    with pytest.raises(XvrInputError, match=r"tiny.npy: the image is 2 x 5 px"):
        read_xray(tmp_path / "tiny.npy", sdd=1000.0, delx=1.0)
    np.save(tmp_path / "ok.npy", _image().astype(np.float32))
    with pytest.raises(XvrInputError, match=r"--delx 1e\+12"):
        read_xray(tmp_path / "ok.npy", sdd=1000.0, delx=1e12)
    with pytest.raises(XvrInputError, match=r"--reducefn 2 is out of range"):
        read_xray(tmp_path / "ok.npy", 2, sdd=1000.0, delx=1.0)


# --- through the real CLI: exit 2, one line, no traceback, nothing written ----------------------


@pytest.fixture(scope="module")
def tiny_ct(tmp_path_factory):
    from napari_xvr.synthetic import example_volume

    return example_volume(tmp_path_factory.mktemp("tiny_ct"), (8, 8, 4))[0]


def _cli(*args):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "napari_xvr.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _assert_refused_once(returncode, stderr, name, words, out):
    assert returncode == 2, (returncode, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert name in lines[0] and all(w in lines[0] for w in words), lines[0]
    assert not out.exists()


def test_cli_subprocess_refuses_frames_that_disagree(multi, tmp_path, tiny_ct):
    """The known bug: NumberOfFrames smaller than the pixel data was registered as success."""
    bad = _edit(multi, tmp_path / "bad.dcm", NumberOfFrames=2)
    out = tmp_path / "out"
    done = _cli(
        "register",
        "fixed",
        bad,
        "-v",
        tiny_ct,
        "--rot",
        "0,0,0",
        "--xyz",
        "0,850,0",
        "-o",
        out,
        "--init_only",
    )
    _assert_refused_once(
        done.returncode, done.stderr, "bad.dcm", ["NumberOfFrames", "fix NumberOfFrames to 3"], out
    )


@pytest.mark.parametrize(
    ("source", "make", "extra", "words"),
    [
        (
            "single",
            _edited(raw=_set_raw("ImagerPixelSpacing", "1e12\\1e12")),
            [],
            ["ImagerPixelSpacing", "1e+12"],
        ),
        ("single", _edited(Rows=65535, Columns=65535), [], ["Rows (0028,0010) is 65535"]),
        ("single", _raw("DistanceSourceToDetector", b"far"), [], ["DistanceSourceToDetector", "'far'"]),
        ("multi", _edited(), ["--reducefn", "7"], ["--reducefn 7 is out of range", "3 frames"]),
    ],
    ids=["spacing_huge", "rows_huge", "sdd_text", "frame_index"],
)
def test_cli_refuses_bad_xrays_with_exit_2(request, tmp_path, tiny_ct, source, make, extra, words):
    from click.testing import CliRunner

    from napari_xvr.cli import main

    bad = make(request.getfixturevalue(source), tmp_path / "bad.dcm")
    out = tmp_path / "out"
    done = CliRunner().invoke(
        main,
        [
            "register",
            "fixed",
            str(bad),
            "-v",
            str(tiny_ct),
            "--rot",
            "0,0,0",
            "--xyz",
            "0,850,0",
            "-o",
            str(out),
            "--init_only",
            *extra,
        ],
    )
    assert isinstance(done.exception, SystemExit), done.exception
    _assert_refused_once(done.exit_code, done.output, "bad.dcm", words, out)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("SC_ybr_full_422_uncompressed.dcm", None),  # subsampled colour: two samples per pixel
        ("SC_rgb_rle_2frame.dcm", None),
        ("examples_ybr_color.dcm", None),
        ("examples_palette.dcm", ["'PALETTE COLOR'"]),
        ("liver_1frame.dcm", ["BitsAllocated (0028,0100) is 1", "binary mask"]),
        ("SC_rgb_small_odd.dcm", ["Rows (0028,0010) is 3"]),
    ],
)
def test_pydicom_test_files(name, words):
    """pydicom's own files with the geometry given: colour and compressed ones read, masks and
    indexed-colour or thumbnail-sized ones are refused by name."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    geometry = {"sdd": 1000.0, "delx": 0.5, "dely": 0.5, "x0": 0.0, "y0": 0.0}
    if words is None:
        assert read_xray(path, **geometry).image.ndim == 2
        return
    with pytest.raises(XvrInputError) as err:
        read_xray(path, **geometry)
    assert name in str(err.value) and all(w in str(err.value) for w in words), str(err.value)
