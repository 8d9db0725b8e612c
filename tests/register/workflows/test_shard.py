"""Sharding inputs among torchrun ranks: the share of each rank, and `xvr register` under torchrun
with two CPU processes and gloo, against a single process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_xvr.register.workflows.one_xray import Written
from napari_xvr.register.workflows.shard import (
    Outcome,
    Shard,
    gather_written,
    join,
    merge,
    rank_device,
    share,
    take,
)

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TORCHRUN = str(Path(sys.executable).parent / "torchrun")


def test_each_input_goes_to_exactly_one_rank_round_robin():
    assert list(share(7, 0, 3)) == [0, 3, 6] and list(share(7, 2, 3)) == [2, 5]
    for n in range(0, 9):
        for world in (1, 2, 3, 4):
            shares = [take(list(range(n)), (r, world)) for r in range(world)]
            assert sorted(i for part in shares for i in part) == list(range(n))
            assert merge(shares) == list(range(n))  # back in the planned order
    assert take(["a", "b"], (3, 4)) == []  # a rank with nothing to do


def test_a_bad_rank_is_refused():
    for rank, world in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ValueError):
            share(3, rank, world)


def test_a_single_process_is_rank_0_of_1():
    assert take([1, 2, 3]) == [1, 2, 3]
    shard = join("cpu")
    assert shard == Shard(0, 1, "cpu") and shard.part == (0, 1) and shard.tag == ""
    assert rank_device("cpu") == torch.device("cpu")
    written = [Written(Path("a"), Outcome({"status": "ok"}))]
    assert gather_written(written) == written


def _register(launcher: list, xrays, ct, out, *extra) -> subprocess.CompletedProcess:
    args = [
        *launcher,
        "-m",
        "napari_xvr.cli",
        "register",
        "fixed",
        xrays,
        "-v",
        ct,
        "-o",
        out,
        "--rot",
        "0,0,0",
        "--xyz",
        "0,850,0",
        "--scales",
        "8",
        "--n_itrs",
        "5",
        "--device",
        "cpu",
        "--verbose",
        "1",
        *extra,
    ]
    return subprocess.run(
        list(map(str, args)), env=ENV, capture_output=True, encoding="utf-8", errors="replace", timeout=300
    )


def _results(out: Path) -> dict:
    return {p.name: json.loads((p / "result.json").read_text()) for p in sorted(out.iterdir())}


@pytest.mark.slow
def test_torchrun_shards_the_xrays_as_one_process_would(registration_volume, synthetic_cases, tmp_path):
    folder, truth = synthetic_cases
    ct, _ = registration_volume
    one = _register([sys.executable], folder, ct, tmp_path / "one")
    assert one.returncode == 0, one.stderr[-3000:]
    two = _register([TORCHRUN, "--standalone", "--nproc_per_node", "2"], folder, ct, tmp_path / "two")
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]
    single, sharded = _results(tmp_path / "one"), _results(tmp_path / "two")
    assert list(sharded) == list(single) == sorted(truth["cases"])  # the same folders
    assert sorted(r["inputs"]["xray"] for r in sharded.values()) == sorted(
        str((folder / f"{name}.dcm").resolve()) for name in truth["cases"]
    )
    for name, result in sharded.items():
        assert np.allclose(result["final_pose"]["matrix"], single[name]["final_pose"]["matrix"], atol=1e-4)
        assert result["verdict"]["status"] == single[name]["verdict"]["status"]
        assert two.stdout.count(f"-> {tmp_path / 'two' / name} ") == 1  # registered exactly once
    assert "[rank 0/2] [1/3] xray_000.dcm" in two.stdout and "[rank 1/2] [2/3] xray_001.dcm" in two.stdout
    summary = one.stdout.strip().splitlines()[-1]
    assert summary.startswith("3 result(s): ")
    assert two.stdout.count("result(s):") == 1 and two.stdout.strip().splitlines()[-1] == summary
    assert not [p for p in (tmp_path / "two").iterdir() if p.name.startswith(".")]


def test_a_rank_without_xrays_still_joins_and_every_rank_exits_alike(
    registration_volume, synthetic_cases, tmp_path
):
    folder, _ = synthetic_cases
    ct, _ = registration_volume
    run = _register(
        [TORCHRUN, "--standalone", "--nproc_per_node", "2"],
        folder / "xray_000.dcm",
        ct,
        tmp_path / "out",
        "--init_only",
        "--exit_on",
        "suspect",
    )
    assert run.returncode != 0  # torchrun's own status when a rank fails
    assert run.stdout.count("1 result(s): 0 ok, 1 suspect, 0 failed") == 1, run.stdout
    assert run.stderr.count("Exit status 3: a result is suspect") == 2, run.stderr[-3000:]  # both ranks
    assert list(_results(tmp_path / "out")) == ["xray_000"]
