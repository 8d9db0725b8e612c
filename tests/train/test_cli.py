"""The CLI as a user runs it: train -> SIGKILL -> restart -> register model; torchrun with gloo."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_helpers import TINY, cli_args

from napari_xvr.evaluate import mtre
from napari_xvr.geometry import pose_from_dict, pose_from_matrix

XVR = str(Path(sys.executable).parent / "xvr")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """A command as a user runs it (one thread each), its output decoded whatever the locale."""
    return subprocess.run(
        args, env=ENV, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout
    )


def test_train_kill_restart_register(train_volume, synthetic_cases, tmp_path):
    ct, mask = train_volume
    out = tmp_path / "model"
    args = [
        XVR,
        "train",
        "-v",
        str(ct),
        "-m",
        str(mask),
        "-o",
        str(out),
        "--n_total_itrs",
        "16",
        "--n_save_every_itrs",
        "2",
        "--verbose",
        "0",
        *cli_args(TINY),
    ]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(out.glob("0*.pth"))) < 3 and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # at any moment: mid-step or mid-write
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read().decode("utf-8", "replace")[-2000:]
    for path in out.glob("*.pth"):  # every visible checkpoint is whole
        assert torch.load(path, weights_only=True)["itr"] % 2 == 0
    resumed_at = max(torch.load(p, weights_only=True)["itr"] for p in out.glob("*.pth"))
    assert 0 < resumed_at < 16

    run = _run(
        [XVR, "restart", "-c", str(out), "--verbose", "0"],
    )
    assert run.returncode == 0, run.stderr[-2000:]
    with open(out / "losses.csv") as handle:
        assert [int(r["itr"]) for r in csv.DictReader(handle)] == list(range(16))
    final = max(out.glob("*.pth"), key=lambda p: torch.load(p, weights_only=True)["itr"])
    assert torch.load(final, weights_only=True)["itr"] == 16

    cases, truth = synthetic_cases
    first = sorted(truth["cases"])[0]
    reg = tmp_path / "registered"
    run = _run(
        [
            XVR,
            "register",
            "model",
            str(cases / f"{first}.dcm"),
            "-c",
            str(final),
            "-v",
            str(ct),
            "-o",
            str(reg),
            "--scales",
            "8",
            "--n_itrs",
            "5",
            "--verbose",
            "0",
            "--antipodal",
        ],
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((reg / first / "result.json").read_text())
    assert result["initialization"]["type"] == "model"
    fid = torch.tensor(truth["fiducials_mm"], dtype=torch.float32)
    true = pose_from_dict(truth["cases"][first]["true_pose"])
    init = pose_from_matrix(result["init_pose"]["matrix"])
    assert mtre(true, init, fid) < 500


def test_the_fast_renderer_trains_from_the_cli(train_volume, tmp_path):
    """`--renderer fast` (napari-xvr's renderer) reaches training, the label terms included."""
    ct, mask = train_volume
    out = tmp_path / "fast"
    run = _run(
        [
            XVR,
            "train",
            "-v",
            str(ct),
            "-m",
            str(mask),
            "-o",
            str(out),
            "--n_total_itrs",
            "2",
            "--n_save_every_itrs",
            "2",
            "--verbose",
            "0",
            "--renderer",
            "fast",
            "--weight_dice",
            "0.5",
            *cli_args(TINY),
        ],
    )
    assert run.returncode == 0, run.stderr[-2000:]
    final = torch.load(max(out.glob("*.pth")), weights_only=True)
    assert final["itr"] == 2 and final["config"]["renderer"] == "fast", final["config"]


def test_cli_errors_are_one_line(tmp_path, train_volume):
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    run = _run([XVR, "restart", "-c", str(tmp_path / "bad.pth")], timeout=120)
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0
    assert "not a torch.save archive" in run.stderr
    ct, _ = train_volume
    run = _run(
        [
            XVR,
            "train",
            "-v",
            str(ct),
            "-o",
            str(tmp_path / "o"),
            *cli_args({**TINY, "parameterization": "rotation_7d"}),
        ],
        timeout=120,
    )
    assert run.returncode == 2 and "parameterization" in run.stderr


def test_torchrun_two_cpu_processes_gloo(train_volume, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    ct, _ = train_volume
    out = tmp_path / "ddp"
    run = _run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node",
            "2",
            XVR,
            "train",
            "-v",
            str(ct),
            "-o",
            str(out),
            "--n_total_itrs",
            "4",
            "--n_save_every_itrs",
            "10",
            "--verbose",
            "0",
            "--device",
            "cpu",
            *cli_args(TINY),
        ],
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    ckpts = sorted(out.glob("*.pth"))
    assert [p.name for p in ckpts] == ["0000.pth", "0001.pth"]  # rank 0 alone writes
    ckpt = torch.load(ckpts[-1], weights_only=True)
    assert ckpt["itr"] == 4 and len(ckpt["rng"]) == 2  # both ranks' RNG streams, for restart
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])  # each rank its own batch
    with open(out / "losses.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 4
    shutil.rmtree(out)


def test_the_cpu_recipe_resizes_the_run_and_explicit_options_win(train_volume, tmp_path):
    """`xvr train --recipe cpu`: 64 px DRRs of the same field of view, the recipe's learning rate
    and renderer; the batch size and samples given on the command line stay."""
    ct, _ = train_volume
    out = tmp_path / "cpu"
    run = _run(
        [XVR, "train", "-v", str(ct), "-o", str(out), "--recipe", "cpu", "--n_total_itrs", "2"]
        + ["--n_save_every_itrs", "2", "--verbose", "0", *cli_args(TINY)],
    )
    assert run.returncode == 0, run.stderr[-2000:]
    config = torch.load(max(out.glob("*.pth")), weights_only=True)["config"]
    assert config["height"] == 64 and config["delx"] == pytest.approx(TINY["height"] * TINY["delx"] / 64)
    assert config["renderer"] == "fast" and config["lr"] == 2e-3 and config["n_save_every_itrs"] == 2
    for given in ("batch_size", "n_samples", "n_grad_accum_itrs", "n_warmup_itrs"):
        assert config[given] == TINY[given], given
    assert config["n_total_itrs"] == 2
