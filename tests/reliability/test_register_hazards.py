"""`xvr register` under hostile options and systems: out-of-range numbers, a start that does not
see the volume, a full disk, kill -9. Real files, real subprocesses, real resource limits."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import time

import pytest
from test_bad_numbers import assert_refused, run

from napari_xvr.errors import XvrInputError
from napari_xvr.register.options import RegistrationOptions


@pytest.fixture()
def case(synthetic_cases, example_volume, tmp_path):
    folder, _ = synthetic_cases
    return folder / "xray_000.dcm", example_volume[0], tmp_path / "out"


@pytest.mark.parametrize(
    "extra,words",
    [
        (["--voxel_shift", "1e12"], ["--voxel_shift", "[0, 1]"]),
        (["--voxel_shift", "-0.5"], ["--voxel_shift", "[0, 1]"]),
        (["--slab_mm", "1e12"], ["--slab_mm", "100 mm"]),
        (["--multistart_rot", "1e12"], ["--multistart_rot", "0-180 deg"]),
        (["--multistart", "100000"], ["--multistart 100000"]),
        (["--lr_xyz", "1e12"], ["--lr_xyz"]),
        (["--sigma", "1e12"], ["--sigma", "0 to 100"]),
        (["--patch_size", "100000"], ["--patch_size 100000"]),
        (["--patience", "0"], ["--patience 0"]),
        (["--threshold", "5"], ["--threshold 5.0"]),
        (["--n_itrs", "1000000000"], ["--n_itrs", "iterations per scale"]),
        (["--n_itrs", "-1"], ["--n_itrs"]),
        (["--delx", "1e12"], ["--delx"]),
        (["--sdd", "1e12"], ["--sdd"]),
    ],
)
def test_out_of_range_options_are_refused_before_any_work(case, extra, words):
    xray, ct, out = case
    args = [
        "register",
        "fixed",
        xray,
        "-v",
        ct,
        "-o",
        out,
        "--rot",
        "0,0,0",
        "--xyz",
        "0,850,0",
        "--verbose",
        0,
        *extra,
    ]
    assert_refused(run(args), *words, out=out)


@pytest.mark.parametrize("xyz", ["500,850,0", "0,-850,0", "0,100000,0"])
def test_a_start_that_does_not_see_the_volume_is_refused(case, xyz):
    xray, ct, out = case
    result = run(["register", "fixed", xray, "-v", ct, "-o", out, "--rot", "0,0,0", "--xyz", xyz])
    assert_refused(result, "DRR at the initial pose", "not in this X-ray's field of view", "--xyz", out=out)


def test_a_start_that_sees_the_volume_registers(case):
    xray, ct, out = case
    done = run(
        [
            "register",
            "fixed",
            xray,
            "-v",
            ct,
            "-o",
            out,
            "--rot",
            "0,0,0",
            "--xyz",
            "0,850,0",
            "--init_only",
            "--verbose",
            0,
        ]
    )
    assert done.exit_code == 0, done.output


def test_python_options_are_checked_the_same_way():
    for kw in (
        {"slab_mm": 500.0},
        {"multistart_xyz": 1e9},
        {"lr_rot": 11.0},
        {"patch_size": 1},
        {"threshold": -1.0},
        {"scales": "8,4", "n_itrs": "5,1e9"},
    ):
        with pytest.raises(XvrInputError):
            RegistrationOptions(**kw)


def _xvr(*args, preexec_fn=None, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "napari_xvr.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        preexec_fn=preexec_fn,
        **popen,
    )


def _full_disk():
    """Files may not grow past 4 kB: every larger write fails with EFBIG, as on a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4_000, 4_000))


def test_a_full_disk_names_the_file_and_leaves_no_half_result(synthetic_cases, example_volume, tmp_path):
    folder, _ = synthetic_cases
    out = tmp_path / "out"
    proc = _xvr(
        "register",
        "dicom",
        folder / "xray_000.dcm",
        "-v",
        example_volume[0],
        "-o",
        out,
        "--init_only",
        "--saveimg",
        "--verbose",
        0,
        preexec_fn=_full_disk,
    )
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err[-2000:]
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert str(out) in err
    assert not out.exists() or list(out.iterdir()) == [], list(out.iterdir())


def test_kill_9_then_the_same_command_finishes_cleanly(synthetic_cases, example_volume, tmp_path):
    """A killed run leaves whole result folders (and perhaps a temporary); the same command with
    --overwrite removes the temporary and writes every result."""
    folder, truth = synthetic_cases
    out = tmp_path / "out"
    args = ("register", "dicom", folder, "-v", example_volume[0], "-o", out, "--scales", "8", "--verbose", 0)
    proc = _xvr(*args)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not list(out.glob("xray_*")):
        time.sleep(0.02)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    for result in out.glob("xray_*"):  # what is there is whole
        json.loads((result / "result.json").read_text())
    again = _xvr(*args, "--overwrite")
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-2000:]
    assert sorted(p.name for p in out.iterdir()) == [f"xray_{i:03d}" for i in range(len(truth["cases"]))]
