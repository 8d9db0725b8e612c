"""`xvr dcm2nii`: once as a user runs it (a subprocess), the rest through click's runner
in-process (each subprocess pays seconds of torch import); outputs read back with SimpleITK."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from napari_xvr.io.dicom_write import write_dicom_series


def _xvr(*args) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("xvr")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "napari_xvr.cli.main"]
    return subprocess.run(
        [*command, *map(str, args)], capture_output=True, encoding="utf-8", errors="replace", timeout=120
    )


def _cli(*args):
    """The same `xvr` group in-process: (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    from napari_xvr.cli.main import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def _series_image(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _assert_same(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))


def test_subprocess_round_trip_and_error(ct_series, tmp_path):
    out = tmp_path / "ct.nii.gz"
    done = _xvr("dcm2nii", ct_series, out)
    assert done.returncode == 0, done.stderr
    assert f"Wrote {out} (64x64x33 voxels, spacing 5.625, 5.625, 10 mm)" in done.stdout
    _assert_same(sitk.ReadImage(str(out)), _series_image(ct_series))
    bad = _xvr("dcm2nii", ct_series, tmp_path / "ct.png")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'ct.png'}: cannot write '.png'; name the output .nii.gz, .nii, .nrrd or .mha"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz"]


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nii", "ct.nrrd", "ct.mha"])
def test_round_trip_keeps_geometry(ct_series, small_ct, tmp_path, name):
    out = tmp_path / "out" / name
    code, stdout, stderr = _cli("dcm2nii", ct_series, out)
    assert code == 0, stderr
    assert f"Wrote {out}" in stdout
    _assert_same(sitk.ReadImage(str(out)), _series_image(ct_series))
    # and back to the same physical volume as the NIfTI the series was written from
    ref = sitk.ReadImage(str(small_ct[0]))
    back = sitk.ReadImage(str(out))
    centre = [(s - 1) / 2 for s in ref.GetSize()]
    np.testing.assert_allclose(
        back.TransformContinuousIndexToPhysicalPoint(centre),
        ref.TransformContinuousIndexToPhysicalPoint(centre),
        atol=1e-4,
    )
    assert [p.name for p in out.parent.iterdir()] == [name]  # no temporary files left


def test_series_option_single_file_and_list(small_ct, tmp_path):
    folder = tmp_path / "two"
    write_dicom_series(small_ct[0], tmp_path / "a", series_uid="1.2.826.0.1.3680043.10.11")
    short = sitk.ReadImage(str(small_ct[0]))[:, :, 5:12]
    write_dicom_series(short, tmp_path / "b", series_uid="1.2.826.0.1.3680043.10.12")
    folder.mkdir()
    for sub in ("a", "b"):
        for f in (tmp_path / sub).iterdir():
            shutil.copy(f, folder / f"{sub}_{f.name}")
    code, stdout, stderr = _cli("dcm2nii", folder, "--list")
    assert code == 0, stderr
    assert stdout.splitlines() == [
        "1.2.826.0.1.3680043.10.11\t33 files",
        "1.2.826.0.1.3680043.10.12\t7 files",
    ]
    code, _, stderr = _cli(
        "dcm2nii", folder, tmp_path / "short.nii.gz", "--series", "1.2.826.0.1.3680043.10.12"
    )
    assert code == 0, stderr
    _assert_same(sitk.ReadImage(str(tmp_path / "short.nii.gz")), _series_image(tmp_path / "b"))
    assert _cli("dcm2nii", folder, tmp_path / "big.nii.gz")[0] == 0
    assert sitk.ReadImage(str(tmp_path / "big.nii.gz")).GetSize()[2] == 33
    code, _, stderr = _cli("dcm2nii", folder / "b_slice_0002.dcm", tmp_path / "from_file.mha")
    assert code == 0, stderr
    _assert_same(sitk.ReadImage(str(tmp_path / "from_file.mha")), _series_image(tmp_path / "b"))


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda d, t: [d, t / "ct.txt"], "cannot write '.txt'; name the output .nii.gz"),
        (lambda d, t: [d, t], "is a folder; give a file name"),
        (lambda d, t: [d, t / "blocker" / "ct.nii.gz"], "is a file, not a folder"),
        (lambda d, t: [t / "empty", t / "ct.nii.gz"], "no DICOM series found"),
        (lambda d, t: [d, t / "ct.nii.gz", "--series", "9.9.9"], "SeriesInstanceUID 9.9.9 is not here"),
    ],
)
def test_errors_are_one_line_exit_2(ct_series, tmp_path, make_args, message):
    (tmp_path / "blocker").write_text("a file")
    (tmp_path / "empty").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, stderr = _cli("dcm2nii", *make_args(ct_series, tmp_path))
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written


def test_missing_outpath_is_usage_error(ct_series):
    code, _, stderr = _cli("dcm2nii", ct_series)
    assert code == 2 and "Missing argument 'OUTPATH'" in stderr


def test_a_full_disk_is_an_error_and_leaves_nothing(ct_series, tmp_path):
    """RLIMIT_FSIZE makes every write past 100 kB fail, as a full disk does: ITK says so only on
    stderr, so the written file is read back; exit 2, no output, no temporary."""
    import resource

    out = tmp_path / "ct.nii"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    exe = Path(sys.executable).with_name("xvr")
    done = subprocess.run(
        [str(exe), "dcm2nii", str(ct_series), str(out)],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
        preexec_fn=limit,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Wrote" not in done.stdout and "Traceback" not in done.stderr
    assert "could not write" in done.stderr or "cannot write the volume" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_is_kept_unless_overwrite(ct_series, tmp_path):
    out = tmp_path / "ct.nii.gz"
    out.write_bytes(b"the user's earlier file")
    code, _, err = _cli("dcm2nii", ct_series, out)
    assert code == 2 and "already exists; pass --overwrite" in err
    assert out.read_bytes() == b"the user's earlier file"
    code, _, err = _cli("dcm2nii", ct_series, out, "--overwrite")
    assert code == 0, err
    _assert_same(sitk.ReadImage(str(out)), _series_image(ct_series))
