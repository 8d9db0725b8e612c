"""The io helpers the napari plugin reuses instead of its own copies: file suffixes and the DICOM
check, the reducefn parser the CLI and the widget share, the frames the reader shows, the
frames' memory check and the all-or-nothing writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from napari_xvr.errors import XvrInputError
from napari_xvr.io.atomic import atomic_write_files
from napari_xvr.io.dicom_write import write_xray_dicom
from napari_xvr.io.volume import file_suffix, is_dicom_file
from napari_xvr.io.xray import check_reducefn, read_xray, reduce_frames


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("ct.nii.gz", ".nii.gz"),
        ("CT.NII.GZ", ".nii.gz"),
        ("a.b.nrrd", ".nrrd"),
        ("x.DCM", ".dcm"),
        ("DICOMDIR", ""),
        ("archive.tar.gz", ".gz"),
    ],
)
def test_file_suffix(name, suffix):
    assert file_suffix(Path("/data") / name) == suffix


def test_is_dicom_file_by_content_and_by_name(tmp_path):
    real = tmp_path / "ct_small"  # pydicom's CT slice without a suffix: only its preamble says DICOM
    shutil.copy(get_testdata_file("CT_small.dcm"), real)
    fake = tmp_path / "notes.dcm"
    fake.write_text("not a DICOM file, only named like one")
    short = tmp_path / "short"
    short.write_bytes(b"\0" * 100)
    assert is_dicom_file(real) and is_dicom_file(real, by_name=False)
    assert is_dicom_file(fake) and not is_dicom_file(fake, by_name=False)
    assert not is_dicom_file(short) and not is_dicom_file(tmp_path / "missing", by_name=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "max"),
        ("", "max"),
        ("   ", "max"),
        ("max", "max"),
        (" SUM ", "sum"),
        ("2", 2),
        (" 2 ", 2),
        ("-1", -1),
        (3, 3),
        (2.0, 2),
    ],
)
def test_check_reducefn_takes_what_the_option_and_the_field_give(text, expected):
    assert check_reducefn(text) == expected


@pytest.mark.parametrize("text", ["median", "1.5", "two", True, 1.5])
def test_check_reducefn_refuses_with_the_choices(text):
    with pytest.raises(XvrInputError, match="use max, sum or a frame index"):
        check_reducefn(text)


def test_reduce_frames_on_arrays_and_tensors(xray_frames):
    import torch

    frames = xray_frames.astype(np.float32)
    np.testing.assert_array_equal(reduce_frames(frames, "max"), frames.max(axis=0))
    np.testing.assert_array_equal(reduce_frames(frames, " sum"), frames.sum(axis=0))
    np.testing.assert_array_equal(reduce_frames(frames, "-1"), frames[-1])
    assert torch.equal(reduce_frames(torch.as_tensor(frames), ""), torch.as_tensor(frames).amax(0))
    with pytest.raises(XvrInputError, match=r"layer: --reducefn 3 is out of range; the file has 3"):
        reduce_frames(frames, 3, "layer")


def test_the_reader_shows_the_core_frames_flipped(tmp_path, xray_frames, intrinsics):
    from napari_xvr.napari._layers import SPANNING_PLANE_MM
    from napari_xvr.napari._reader import read_one

    path = write_xray_dicom(
        tmp_path / "pf.dcm", xray_frames, intrinsics, -20.0, 0.0, 780.0, patient_orientation=("P", "F")
    )
    xray = read_xray(path)
    assert xray.pf_to_af and xray.frames.shape == xray_frames.shape
    [(data, kwargs, kind)] = read_one(path)
    # (frame, plane, row, col): the frames a slider of their own, one plane spanning the CT's
    assert kind == "image" and kwargs["scale"] == (1.0, SPANNING_PLANE_MM, intrinsics.dely, intrinsics.delx)
    np.testing.assert_array_equal(data[:, 0], xray_frames[..., ::-1].astype(np.float32))
    np.testing.assert_array_equal(data[:, 0], xray.frames)


def test_frames_past_the_memory_budget_are_refused_before_decoding(multiframe_dicom, monkeypatch):
    monkeypatch.setenv("NAPARI_XVR_MAX_MEMORY_GB", str(1000 / (1 << 30)))  # 3 x 40 x 50 px need 72 kB
    with pytest.raises(
        XvrInputError,
        match=r"multi\.dcm: 3 frames of 40x50 px would need about 0 MiB "
        r".*open a single frame \(xvr reads it with --reducefn\)",
    ):
        read_xray(multiframe_dicom)
    monkeypatch.setenv("NAPARI_XVR_MAX_MEMORY_GB", "1")
    assert read_xray(multiframe_dicom).frames.shape == (3, 40, 50)


def test_atomic_write_files_is_all_or_nothing(tmp_path):
    first, blocker = tmp_path / "a.json", tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    with pytest.raises(XvrInputError, match="is a file, not a folder"):
        atomic_write_files({first: b"{}", blocker / "b.csv": b"x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]  # no a.json, no temporaries
    atomic_write_files({first: b"{}", tmp_path / "b.csv": b"x,y\n"})
    assert first.read_bytes() == b"{}" and (tmp_path / "b.csv").read_text() == "x,y\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.csv", "blocker"]
