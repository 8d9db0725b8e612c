"""A training run never writes into another run's folder: `train -o` into a run is refused unless
`--overwrite`, `restart` continues in the checkpoint's own folder (or -o), losses.csv is rewritten
atomically and stale temporaries of killed writes are removed. Real processes and files."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from train_helpers import TINY, cli_args

XVR = str(Path(sys.executable).parent / "xvr")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _xvr(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [XVR, *map(str, args)], env=ENV, capture_output=True, encoding="utf-8", errors="replace", timeout=300
    )


def _train(ct, out, itrs=4, *extra) -> subprocess.CompletedProcess:
    return _xvr(
        "train",
        "-v",
        ct,
        "-o",
        out,
        "--n_total_itrs",
        itrs,
        "--n_save_every_itrs",
        2,
        "--verbose",
        0,
        *cli_args(TINY),
        *extra,
    )


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _itrs(folder: Path) -> list[int]:
    with (folder / "losses.csv").open() as handle:
        return [int(row["itr"]) for row in csv.DictReader(handle)]


def test_train_into_a_run_is_refused_then_replaced_when_asked(train_volume, tmp_path):
    ct, _ = train_volume
    out = tmp_path / "run"
    first = _train(ct, out, 6)
    assert first.returncode == 0, first.stderr[-2000:]
    before = _snapshot(out)
    assert "0002.pth" in before and "losses.csv" in before
    again = _train(ct, out, 2)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "already holds a training run" in again.stderr and "xvr restart -c" in again.stderr
    assert _snapshot(out) == before  # nothing touched
    replaced = _train(ct, out, 2, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    # the old run's later checkpoints are gone with it: every one left is of the new 2-step run
    assert all(torch.load(p, weights_only=True)["itr"] <= 2 for p in out.glob("*.pth"))
    assert _itrs(out) == [0, 1]


def test_restart_continues_in_a_copied_folder_and_leaves_the_original(train_volume, tmp_path):
    ct, _ = train_volume
    original = tmp_path / "original"
    assert _train(ct, original, 4).returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    (copy / "0001.pth").unlink()  # resume from the first checkpoint (itr 2) of the copy
    with (copy / "losses.csv").open("a") as handle:
        handle.write("garbage,row\n")  # a torn last line from a kill: dropped on resume
    (copy / ".0009.pth.abc123.tmp").write_bytes(b"half a checkpoint")  # a killed write's leftover
    kept = _snapshot(original)
    run = _xvr("restart", "-c", copy, "--n_total_itrs", 6, "--verbose", 0)
    assert run.returncode == 0, run.stderr[-2000:]
    assert _snapshot(original) == kept  # the stored outpath (the original) was not written
    assert _itrs(copy) == list(range(6))
    assert torch.load(max(copy.glob("0*.pth")), weights_only=True)["itr"] == 6
    assert not list(copy.glob(".*.tmp"))
    # to another folder with -o: refused when it holds a run, the losses carried over otherwise
    busy = _xvr("restart", "-c", copy, "-o", original, "--n_total_itrs", 8, "--verbose", 0)
    assert busy.returncode == 2 and "already holds a training run" in busy.stderr
    assert _snapshot(original) == kept
    elsewhere = tmp_path / "elsewhere"
    moved = _xvr("restart", "-c", copy, "-o", elsewhere, "--n_total_itrs", 8, "--verbose", 0)
    assert moved.returncode == 0, moved.stderr[-2000:]
    assert _itrs(elsewhere) == list(range(8))
