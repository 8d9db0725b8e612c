"""Killing training at any moment and `xvr restart`: SIGKILL mid-epoch, then SIGTERM during the
restart (exit 143, whole checkpoints, no temporaries), then a restart to the end gives exactly the
losses of an uninterrupted run (CPU, one thread, as the README promises); restarting the finished
run changes nothing. Real processes, signals and files."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "train"))
from train_helpers import TINY, cli_args  # noqa: E402

XVR = [sys.executable, "-m", "napari_xvr.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
N, EVERY = 40, 4  # room after the restart's first new checkpoint: the SIGTERM must land mid-run


def _args(ct, out) -> list[str]:
    return [
        "train",
        "-v",
        str(ct),
        "-o",
        str(out),
        "--n_total_itrs",
        str(N),
        "--n_save_every_itrs",
        str(EVERY),
        "--verbose",
        "0",
        *cli_args(TINY),
    ]


def _itrs_saved(out: Path) -> list[int]:
    return sorted(torch.load(p, weights_only=True)["itr"] for p in out.glob("[0-9]*.pth"))


def _start_and_signal(args, out: Path, signum, after_itr: int) -> subprocess.Popen:
    """Start `xvr args`, send `signum` once a checkpoint past `after_itr` is on disk."""
    proc = subprocess.Popen(
        [*XVR, *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        names = [p.name for p in out.glob("[0-9]*.pth")] if out.is_dir() else []
        if names and max(_itrs_saved(out)) > after_itr:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted: " + proc.stderr.read()
    time.sleep(0.3)  # into the middle of the next steps
    proc.send_signal(signum)
    proc.wait(timeout=120)
    return proc


def _rows(out: Path) -> list[dict]:
    with (out / "losses.csv").open() as handle:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(handle)]


def _whole(out: Path) -> None:
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporaries
    for path in out.glob("*.pth"):
        assert torch.load(path, weights_only=True)["itr"] % EVERY == 0


def test_kill_terminate_restart_reproduces_an_uninterrupted_run(example_volume, tmp_path):
    ct, _ = example_volume
    straight = tmp_path / "straight"
    run = subprocess.run([*XVR, *_args(ct, straight)], env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]

    out = tmp_path / "killed"
    proc = _start_and_signal(_args(ct, out), out, signal.SIGKILL, 0)
    assert proc.returncode == -signal.SIGKILL
    resumed_at = max(_itrs_saved(out))
    assert 0 < resumed_at < N

    proc = _start_and_signal(["restart", "-c", str(out), "--verbose", "0"], out, signal.SIGTERM, resumed_at)
    err = proc.stderr.read()
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err and "Terminated" in err
    _whole(out)
    assert resumed_at < max(_itrs_saved(out)) < N

    run = subprocess.run(
        [*XVR, "restart", "-c", str(out), "--verbose", "0"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    _whole(out)
    rows = _rows(out)
    assert [int(r["itr"]) for r in rows] == list(range(N))  # none missing, none twice
    assert rows == _rows(straight)  # every loss term identical to the uninterrupted run's
    assert max(_itrs_saved(out)) == N

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = subprocess.run(
        [*XVR, "restart", "-c", str(out), "--verbose", "0"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 2 and "the run is finished" in again.stderr, again.stderr[-2000:]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
