"""Bad input through the real `xvr` command: one line, exit status 2, nothing half-written."""

import subprocess
import sys

import numpy as np
import pytest

from napari_xvr.geometry import Intrinsics
from napari_xvr.io.dicom_write import write_xray_dicom

RAMP = np.arange(32 * 32).reshape(32, 32) % 97 + 100  # a non-blank 32 px image


def xvr(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "napari_xvr.cli", *map(str, args)],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        cwd=cwd,
        timeout=300,
    )


def assert_user_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert lines, "no message"
    message = lines[-1]
    for needle in needles:
        assert needle in message, message


@pytest.fixture(scope="module")
def good_xray(tmp_path_factory):
    path = tmp_path_factory.mktemp("xr") / "good.dcm"
    write_xray_dicom(
        path,
        np.random.default_rng(0).uniform(0, 4000, (64, 64)),
        Intrinsics(1020.0, 64, 64, 6.4, 6.4),
        10.0,
        5.0,
        850.0,
    )
    return path


def test_version_and_help():
    proc = xvr("--version")
    assert proc.returncode == 0 and "xvr" in proc.stdout
    proc = xvr("register", "fixed", "-h")
    assert proc.returncode == 0
    for heading in (
        "Required options",
        "Renderer options",
        "Preprocessing options",
        "Optimizer options",
        "Logging options",
        "Initial pose options",
    ):
        assert heading in proc.stdout


def test_non_dicom_file(tmp_path, example_volume):
    bad = tmp_path / "notes.dcm"
    bad.write_text("this is not an image")
    out = tmp_path / "out"
    assert_user_error(xvr("register", "dicom", bad, "-v", example_volume[0], "-o", out), "notes.dcm", "DICOM")
    assert not out.exists() or not any(out.iterdir())


def test_rot_with_wrong_count(tmp_path, good_xray, example_volume):
    proc = xvr(
        "register",
        "fixed",
        good_xray,
        "-v",
        example_volume[0],
        "-o",
        tmp_path / "o",
        "--rot",
        "0,0",
        "--xyz",
        "0,850,0",
    )
    assert_user_error(proc, "--rot", "3")


def test_output_path_that_is_a_file(tmp_path, good_xray, example_volume):
    target = tmp_path / "taken"
    target.write_text("keep me")
    proc = xvr("register", "dicom", good_xray, "-v", example_volume[0], "-o", target)
    assert_user_error(proc, "taken", "folder")
    assert target.read_text() == "keep me"


def test_labels_absent_from_mask(tmp_path, good_xray, example_volume):
    ct, mask = example_volume
    proc = xvr(
        "register",
        "dicom",
        good_xray,
        "-v",
        ct,
        "-m",
        mask,
        "--labels",
        "9999",
        "-o",
        tmp_path / "o",
        "--init_only",
    )
    assert_user_error(proc, "9999", "labelmap")


def test_missing_header_angles_suggests_fixed(tmp_path, example_volume):
    path = tmp_path / "noangles.dcm"
    write_xray_dicom(path, RAMP, Intrinsics(1020.0, 32, 32, 6.4, 6.4))
    proc = xvr("register", "dicom", path, "-v", example_volume[0], "-o", tmp_path / "o")
    assert_user_error(proc, "PositionerPrimaryAngle", "register fixed")


def test_missing_sdd_names_the_option(tmp_path, example_volume):
    import pydicom

    path = tmp_path / "nosdd.dcm"
    write_xray_dicom(path, RAMP, Intrinsics(1020.0, 32, 32, 6.4, 6.4), 0, 0, 850)
    ds = pydicom.dcmread(path)
    del ds.DistanceSourceToDetector
    ds.save_as(path)
    proc = xvr("register", "dicom", path, "-v", example_volume[0], "-o", tmp_path / "o")
    assert_user_error(proc, "DistanceSourceToDetector", "--sdd")


def test_nan_volume(tmp_path, good_xray):
    import nibabel as nib

    data = np.zeros((16, 16, 16), dtype=np.float32)
    data[4, 4, 4] = np.nan
    vol = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), vol)
    assert_user_error(xvr("register", "dicom", good_xray, "-v", vol, "-o", tmp_path / "o"), "NaN")


def test_flat_volume(tmp_path, good_xray):
    import nibabel as nib

    vol = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 1), dtype=np.float32), np.eye(4)), vol)
    assert_user_error(xvr("register", "dicom", good_xray, "-v", vol, "-o", tmp_path / "o"), "3D")


def test_help_imports_no_torch():
    """`xvr --help` and every command's --help stay light: torch, diffdrr and napari load on use."""
    code = """
import sys
from click.testing import CliRunner
from napari_xvr.cli import main
for args in (["--help"], ["register", "fixed", "--help"], ["register", "model", "--help"],
             ["train", "--help"], ["restart", "--help"], ["animate", "--help"], ["export", "--help"],
             ["evaluate", "--help"], ["dcm2nii", "--help"], ["demo", "--help"]):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, (args, result.output)
heavy = sorted(m for m in ("torch", "diffdrr", "napari", "SimpleITK", "timm") if m in sys.modules)
print("heavy:", heavy)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "heavy: []" in run.stdout, run.stdout
