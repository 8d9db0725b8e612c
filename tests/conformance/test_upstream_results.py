"""Upstream xvr's registration output (<stem>.pth) is accepted wherever our result folders are.

Upstream's own ``Register`` writes a real .pth on the CPU (the 8x8x4-downsampled chest CT, a
64 px synthetic X-ray, 3 iterations); our reader, `register restart -r`, `evaluate`, `export`
and the napari reader's path check take it, and our export is loaded by upstream's RestartPose.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from napari_xvr.cli.main import main
from napari_xvr.errors import XvrInputError


def xvr(*args, code: int = 0):
    run = CliRunner().invoke(main, [str(a) for a in args])
    assert run.exit_code == code, (run.output, run.exception)
    return run


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """(ct, folder with xray_000.dcm + truth.json) at 64 px."""
    from napari_xvr.geometry import Intrinsics
    from napari_xvr.synthetic import example_volume, make_cases

    root = tmp_path_factory.mktemp("upstream_case")
    ct, mask = example_volume(root, (8, 8, 4))
    intr = Intrinsics(sdd=1020.0, height=64, width=64, delx=6.4, dely=6.4)
    make_cases(root / "cases", n=1, seed=0, intrinsics=intr, volume=ct, mask=mask)
    return ct, root / "cases"


@pytest.fixture(scope="module")
def upstream_pth(upstream, case, tmp_path_factory):
    """The .pth upstream's own Register writes (scale 2: gmncc's 9 px patches need >= 9 px)."""
    from xvr.register import FixedPose, Register

    ct, cases = case
    out = tmp_path_factory.mktemp("upstream_out")
    reg = Register(
        initializer=FixedPose(rot=[0.0, 0.0, 0.0], xyz=[0.0, 850.0, 0.0], device="cpu"),
        imagepath=str(ct),
        device="cpu",
        scales=[2],
        n_itrs=[3],
    )
    reg(str(cases / "xray_000.dcm"), savepath=str(out))
    return out / "xray_000.pth"


def _saved(path) -> dict:
    data = torch.load(path, map_location="cpu", weights_only=True)
    data["final_pose"] = data["final_pose"].detach()  # upstream saves it with requires_grad
    return data


def test_read_gives_upstreams_exact_pose(upstream_pth):
    from napari_xvr.io.result import read_result, result_pose

    saved = _saved(upstream_pth)
    data = read_result(upstream_pth)
    assert data["final_pose"]["matrix"] == saved["final_pose"][0].tolist()
    assert data["init_pose"]["matrix"] == saved["init_pose"][0].tolist()
    assert torch.equal(result_pose(data).matrix, saved["final_pose"])
    det = saved["detector"]
    assert data["intrinsics"] == {
        "sdd": det["sdd"],
        "height": det["height"],
        "width": det["width"],
        "delx": det["delx"],
        "dely": det["dely"],
        "x0": 0.0,
        "y0": 0.0,
    }
    assert data["inputs"]["reverse_x_axis"] is det["reverse_x_axis"]
    assert data["iterations"] == len(saved["log"]["losses"]) == 3
    assert data["similarity"] == saved["log"]["losses"][-1]
    assert data["runtime_s"] == saved["runtime"] and data["source"] == "xvr 0.1.0 .pth"


@pytest.mark.parametrize("as_outdir", [False, True])
def test_restart_from_pth(upstream_pth, case, tmp_path, as_outdir):
    ct, cases = case
    previous = upstream_pth.parent if as_outdir else upstream_pth
    out = tmp_path / "restarted"
    xvr("register", "restart", cases / "xray_000.dcm", "-v", ct, "-o", out, "-r", previous, "--init_only")
    result = json.loads((out / "xray_000" / "result.json").read_text())
    expected = _saved(upstream_pth)["final_pose"][0].numpy()
    assert np.abs(np.asarray(result["init_pose"]["matrix"]) - expected).max() < 1e-5


def test_evaluate_a_pth(upstream_pth, case, tmp_path):
    _, cases = case
    table = tmp_path / "errors.json"
    run = xvr("evaluate", upstream_pth, "-t", cases / "truth.json", "--json", table)
    assert "xray_000: mTRE" in run.output
    row = json.loads(table.read_text())["xray_000"]
    assert np.isfinite(row["final"]["mtre"]) and row["final"]["n_fiducials"] > 0
    # and a .pth as the truth: the pose against itself is off by nothing
    same = xvr("evaluate", upstream_pth, "-t", upstream_pth, "-f", cases / "truth.json")
    assert "mTRE 0.000 mm" in same.output


def test_export_xvr_is_read_by_upstream_restartpose(upstream, case, tmp_path):
    from xvr.register import RestartPose

    ct, cases = case
    ours = tmp_path / "ours"
    xvr(
        "register",
        "fixed",
        cases / "xray_000.dcm",
        "-v",
        ct,
        "-o",
        ours,
        "--rot",
        "0,0,0",
        "--xyz",
        "0,850,0",
        "--scales",
        "2",
        "--n_itrs",
        "3",
        "--reverse_x_axis",
    )
    result = json.loads((ours / "xray_000" / "result.json").read_text())
    assert result["inputs"]["reverse_x_axis"] is True and result["final_pose"] is not None
    out = tmp_path / "export"
    xvr("export", ours / "xray_000", "--format", "xvr", "-o", out)
    restart = RestartPose(ckpt=str(out / "xray_000.pth"), device="cpu")
    expected = torch.tensor(result["final_pose"]["matrix"], dtype=torch.float32)
    assert torch.allclose(restart.pose.matrix[0], expected, atol=1e-6)
    assert restart.reverse_x_axis is True
    assert _saved(out / "xray_000.pth")["gt"].shape == (1, 1, 64, 64)

    refused = xvr("export", ours / "xray_000", "--format", "xvr", "-o", out, code=2)
    assert "xray_000.pth already exists; pass --overwrite" in refused.stderr
    xvr("export", ours / "xray_000", "--format", "xvr", "-o", out, "--overwrite")


def _bad_files(folder):
    garbage = folder / "garbage.pth"
    garbage.write_bytes(b"not a torch file\n")
    checkpoint = folder / "checkpoint.pth"
    torch.save({"model_state_dict": {"w": torch.zeros(2)}, "config": {"lr": 1e-3}}, checkpoint)
    pickled = folder / "pickled.pth"
    torch.save(
        {
            "detector": {"sdd": 1.0},
            "final_pose": torch.eye(4),
            "init_pose": torch.eye(4),
            "extra": np.dtype("float32").type,
        },
        pickled,
    )
    return {
        garbage: "not a torch.save archive",
        checkpoint: "not an xvr registration result",
        pickled: "refused to load",
    }


def test_bad_pth_is_a_one_line_error(case, tmp_path):
    from napari_xvr.io.upstream import looks_like_upstream_result, read_upstream_result

    ct, cases = case
    restart = [
        "register",
        "restart",
        cases / "xray_000.dcm",
        "-v",
        ct,
        "-o",
        tmp_path / "o",
        "--init_only",
        "-r",
    ]
    for path, message in _bad_files(tmp_path).items():
        with pytest.raises(XvrInputError, match=message):
            read_upstream_result(path)
        if path.name != "pickled.pth":
            assert not looks_like_upstream_result(path)
        for args in (
            [*restart, path],
            ["evaluate", path, "-t", cases / "truth.json"],
            ["export", path, "--format", "xvr", "-o", tmp_path / "x"],
        ):
            lines = xvr(*args, code=2).stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
    assert not (tmp_path / "o").exists() and not (tmp_path / "x").exists()
    # the real CLI, as a user runs it: one line, exit status 2, no traceback
    proc = subprocess.run(
        [sys.executable, "-m", "napari_xvr.cli", *map(str, restart), str(tmp_path / "checkpoint.pth")],
        capture_output=True,
        encoding="utf-8",
        timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'checkpoint.pth'}: not an xvr registration result, it lacks "
        "'detector', 'init_pose', 'final_pose' (a model checkpoint?)"
    ]


def test_napari_reader_path_check(upstream_pth, tmp_path):
    from napari_xvr.napari._reader import upstream_layers
    from napari_xvr.napari._reader_kinds import _kind

    assert _kind(upstream_pth) == "upstream"
    for path in _bad_files(tmp_path):
        if path.name != "pickled.pth":
            assert _kind(path) is None
    ((data, kwargs, kind),) = upstream_layers(upstream_pth)
    assert kind == "image" and data.shape == (64, 64)
    assert kwargs["metadata"]["pose"]["matrix"] == _saved(upstream_pth)["final_pose"][0].tolist()
