"""`python -m benchmarks --quick` runs end to end and its numbers are sane (not fast: just sane)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_benchmark_runs_and_numbers_are_sane(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--json",
            str(out),
            "--threads",
            "2",
            "--cache",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| volume |" in proc.stdout and "DRRs / s" in proc.stdout
    data = json.loads(out.read_text())
    env_info = data["environment"]
    assert env_info["torch_threads"] == 2 and env_info["torch"] and env_info["diffdrr"]
    renderers = {row["renderer"] for row in data["renderer"]}
    assert {"ours", "diffdrr_trilinear", "diffdrr_siddon"} <= renderers
    for row in data["renderer"]:
        assert 0 < row["forward_s"] < 60 and 0 < row["fwd_bwd_s"] < 120
        assert math.isfinite(row["peak_mib"])
        if row["renderer"] == "ours":
            assert row["rel_l2_vs_trilinear"] < 1e-3
    for row in data["registration"]:
        assert row["seconds"] > 0 and row["iterations"] > 0
        # plumbing only: 6 iterations on a 32 px X-ray may not improve xvr's mTRE (it weighs the
        # source position, which a coarse single view pins poorly), but stay near the start
        assert math.isfinite(row["mtre_mm"]) and row["mtre_mm"] < row["mtre_init_mm"] + 100
    realistic = data["realistic"]  # one simulated chest X-ray, registered with the defaults
    assert [s["n"] for s in realistic["summaries"]] == [1, 1]
    row = realistic["rows"][0]
    assert row["anatomy"] == "chest" and row["mtre"] < row["mtre_init"]
    assert row["verdict"] in ("ok", "suspect", "failed") and "Realistic X-rays" in proc.stdout
    for row in data["training"]:
        assert row["drr_per_s"] > 0 and row["itr_per_s"] > 0
    assert data["summary"]["registration_speedup"] > 0


def test_the_cpu_training_benchmark_builds_its_recipe_and_its_doc_block(tmp_path):
    """benchmarks.train_cpu's config is one TrainConfig accepts (a renamed option once broke it
    unseen), and its documentation block renders from a run's JSON."""
    from argparse import Namespace

    from benchmarks.train_cpu import cpu_recipe, doc_block

    args = Namespace(batch_size=None, model_name="resnet18", renderer=None, lr=None, itrs=100, threads=2)
    config = cpu_recipe(args, tmp_path / "ct.nii.gz", tmp_path / "model")
    assert config.renderer == "fast" and config.height == 64 and config.n_total_itrs == 100
    assert config.delx == 6.4 and config.batch_size == 16  # the field of the cases, the recipe's batch
    data = {
        "args": vars(args),
        "command": "--itrs 100",
        "cpu": "x86_64",
        "train_s": 90.0,
        "curve": [{"minutes": 1.5, "itr": 100, "median_mm": 30.0, "mean_mm": 31.0, "within_20mm": 0.25}],
        "init_mm": [10.0, 30.0],
        "registered_mm": [0.5, 3.0],
        "register_s": 4.0,
    }
    block = doc_block(data)
    assert "| 1.5 | 100 | 30.0 mm | 31.0 mm | 25 % |" in block
    assert "1/2 under 1 mm" in block and "50 % within 20 mm" in block
