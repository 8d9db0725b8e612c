"""Which flip and orientation a run uses, decided once in the core (register/resolve.py) and
applied alike by the CLI and scripts (the widget: tests/napari/test_register_widget.py): a given
option wins, else a previous result's or a checkpoint's record, else the default."""

import json
import subprocess
import sys

import pytest

from napari_xvr.register.initializers import RestartInitializer
from napari_xvr.register.resolve import resolve_spec
from napari_xvr.register.volume_spec import VolumeSpec
from napari_xvr.train.checkpoint import save_checkpoint
from napari_xvr.train.model_init import ModelInitializer
from napari_xvr.train.network import PoseRegressor

CONFIG = {
    "model_name": "test_resnet",
    "parameterization": "euler_angles",
    "convention": "ZXY",
    "norm_layer": "groupnorm1",
    "height": 32,
    "sdd": 1020.0,
    "delx": 12.8,
    "orientation": "PA",
    "reverse_x_axis": True,
}


def xvr(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "napari_xvr.cli", *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _inputs(folder):
    return json.loads((folder / "result.json").read_text())["inputs"]


@pytest.fixture(scope="module")
def previous(tmp_path_factory, registration_volume, synthetic_cases):
    """A result registered flipped (--reverse_x_axis), its X-ray and CT."""
    folder, _ = synthetic_cases
    out = tmp_path_factory.mktemp("previous")
    ct = registration_volume[0]
    xvr(
        "register",
        "fixed",
        folder / "xray_000.dcm",
        "-v",
        ct,
        "-o",
        out,
        "--rot",
        "0,0,0",
        "--xyz",
        "0,850,0",
        "--reverse_x_axis",
        "--init_only",
        "--verbose",
        "0",
    )
    return out / "xray_000", folder / "xray_000.dcm", ct


def test_a_restart_follows_the_previous_flip_unless_told(previous, tmp_path):
    result, xray, ct = previous
    assert _inputs(result)["reverse_x_axis"] is True
    spec, notes = resolve_spec(VolumeSpec(ct), RestartInitializer(result))  # a script
    assert spec.reverse_x_axis is True and notes == []
    xvr("register", "restart", xray, "-v", ct, "-o", tmp_path / "a", "-r", result, "--init_only")
    assert _inputs(tmp_path / "a" / "xray_000")["reverse_x_axis"] is True  # the CLI agrees
    told = xvr(
        "register",
        "restart",
        xray,
        "-v",
        ct,
        "-o",
        tmp_path / "b",
        "-r",
        result,
        "--init_only",
        "--no-reverse_x_axis",
    )
    assert _inputs(tmp_path / "b" / "xray_000")["reverse_x_axis"] is False
    assert "differs from the restart's True" in told.stderr


def test_a_model_run_follows_the_checkpoints_orientation_and_flip(previous, tmp_path):
    _, xray, ct = previous
    model = PoseRegressor("test_resnet", "euler_angles", "ZXY", False, 32, "groupnorm1", 1000.0)
    ckpt = save_checkpoint(tmp_path / "0000.pth", {"model_state_dict": model.state_dict(), "config": CONFIG})
    spec, _ = resolve_spec(VolumeSpec(ct), ModelInitializer(ckpt, ct))  # a script
    assert (spec.orientation, spec.reverse_x_axis) == ("PA", True)
    xvr("register", "model", xray, "-c", ckpt, "-v", ct, "-o", tmp_path / "m", "--init_only")
    inputs = _inputs(tmp_path / "m" / "xray_000")  # the CLI agrees
    assert (inputs["orientation"], inputs["reverse_x_axis"]) == ("PA", True)
    told = xvr(
        "register",
        "model",
        xray,
        "-c",
        ckpt,
        "-v",
        ct,
        "-o",
        tmp_path / "n",
        "--init_only",
        "--orientation",
        "AP",
    )
    assert _inputs(tmp_path / "n" / "xray_000")["orientation"] == "AP"
    assert "--orientation AP differs from the model's PA" in told.stderr
