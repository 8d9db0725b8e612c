"""SIGTERM is handled like Ctrl-C: a clean exit, whole result folders only, no temporaries."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_run_leaves_whole_results_only(
    synthetic_cases, example_volume, tmp_path, signum, status
):
    folder, truth = synthetic_cases
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "napari_xvr.cli",
            "register",
            "dicom",
            str(folder),
            "-v",
            str(example_volume[0]),
            "-o",
            str(out),
            "--renderer",
            "trilinear",
            "--verbose",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        # as from an interactive shell: a job started in the background of a script inherits
        # SIGINT ignored, and Python then installs no KeyboardInterrupt handler
        preexec_fn=_default_sigint,
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not list(out.glob("xray_*")):
        time.sleep(0.05)
    time.sleep(0.3)  # into the next X-ray's registration
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err[-2000:]
    assert "Traceback" not in err and "nothing half-written" in err
    results = sorted(out.glob("xray_*"))
    assert 0 < len(results) < len(truth["cases"]), results
    for result in results:
        assert {p.name for p in result.iterdir()} >= {"result.json", "trajectory.csv"}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
