"""`xvr register`, `evaluate` and `animate` run as a user runs them; their files read back."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest


def xvr(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "napari_xvr.cli", *map(str, args)],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def registered(tmp_path_factory, registration_volume, synthetic_cases):
    folder, _ = synthetic_cases
    out = tmp_path_factory.mktemp("results")
    ct, mask = registration_volume
    # DiffDRR's images of exactly this CT: its density, nothing beyond the CT's ends to leave out
    xvr(
        "register",
        "dicom",
        folder,
        "-v",
        ct,
        "-m",
        mask,
        "-o",
        out,
        "--scales",
        "4,2,1",
        "--n_itrs",
        "200,100,50",
        "--saveimg",
        "--verbose",
        "0",
        "--density",
        "diffdrr",
        "--xray_mask",
        "off",
    )
    return out


def test_results_are_written_per_xray(registered, synthetic_cases):
    folder, truth = synthetic_cases
    for name in truth["cases"]:
        result = json.loads((registered / name / "result.json").read_text())
        for key in (
            "inputs",
            "intrinsics",
            "preprocessing",
            "options",
            "init_pose",
            "final_pose",
            "similarity",
            "runtime_s",
            "iterations",
        ):
            assert key in result
        assert np.asarray(result["final_pose"]["matrix"]).shape == (4, 4)
        assert len(result["final_pose"]["rotation_deg_zxy"]) == 3
        with (registered / name / "trajectory.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == result["iterations"] > 0
        assert {"r1", "r2", "r3", "tx", "ty", "tz", "similarity", "time", "lr_rot", "lr_xyz"} <= set(rows[0])
        for png in ("xray", "init_drr", "final_drr", "overlay"):
            assert (registered / name / f"{png}.png").stat().st_size > 0
    assert not [p for p in registered.iterdir() if p.name.startswith(".")]


def test_evaluate_reports_sub_mm(registered, synthetic_cases, tmp_path):
    folder, truth = synthetic_cases
    table = tmp_path / "errors.json"
    proc = xvr(
        "evaluate", *[registered / n for n in truth["cases"]], "-t", folder / "truth.json", "--json", table
    )
    assert "mTRE" in proc.stdout
    rows = json.loads(table.read_text())
    assert all(row["final"]["mtre"] < 1.0 for row in rows.values()), rows
    assert all(row["init"]["mtre"] > 5.0 for row in rows.values())


def test_restart_from_a_result_and_animate(registered, registration_volume, synthetic_cases, tmp_path):
    folder, _ = synthetic_cases
    ct, _ = registration_volume
    out = tmp_path / "again"
    xvr(
        "register",
        "restart",
        folder / "xray_000.dcm",
        "-v",
        ct,
        "-r",
        registered,
        "-o",
        out,
        "--scales",
        "1",
        "--n_itrs",
        "5",
        "--multistart",
        "1",
        "--multistart_rot",
        "2",
        "--multistart_xyz",
        "5",
        "--verbose",
        "0",
    )
    first = json.loads((registered / "xray_000" / "result.json").read_text())
    again = json.loads((out / "xray_000" / "result.json").read_text())
    assert np.allclose(again["init_pose"]["matrix"], first["final_pose"]["matrix"], atol=1e-4)
    assert again["options"]["multistart"] == 1 and len(again["multistart"]["similarities"]) == 2
    assert first["multistart"] is None
    gif = tmp_path / "replay.gif"
    xvr("animate", "-i", registered / "xray_000", "-o", gif, "--max_frames", "8", "--max_size", "64")
    import imageio.v3 as iio

    frames = iio.imread(gif, index=None)
    assert frames.shape[0] == 8 and frames.shape[2] == 3 * 64


def test_animate_refuses_an_existing_output_and_expands_the_tilde(registered, tmp_path, monkeypatch):
    gif = tmp_path / "replay.gif"
    gif.write_bytes(b"the user's own file")
    args = [
        "-m",
        "napari_xvr.cli",
        "animate",
        "-i",
        str(registered / "xray_000"),
        "--max_frames",
        "2",
        "--max_size",
        "32",
    ]
    refused = subprocess.run([sys.executable, *args, "-o", str(gif)], capture_output=True, text=True)
    assert refused.returncode == 2 and "pass --overwrite" in refused.stderr, refused.stderr
    assert gif.read_bytes() == b"the user's own file"
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    done = subprocess.run(
        [sys.executable, *args, "-o", "~/replay.gif"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (home / "replay.gif").is_file() and not (tmp_path / "~").exists()
