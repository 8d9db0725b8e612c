"""The engine, the fast renderer's gradients, training steps and registration on each device
this machine has: the CPU always; CUDA (``-m cuda``) where a GPU exists, skipped elsewhere.
On a GPU machine: ``python -m pytest -m cuda && python -m benchmarks --device cuda``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "train"))
from diffdrr.drr import DRR
from diffdrr.pose import convert
from train_helpers import TINY as TRAIN_TINY  # noqa: E402

from napari_xvr.evaluate import mtre
from napari_xvr.fastdrr import FastDRR
from napari_xvr.geometry import pose_from_dict
from napari_xvr.io.volume import read_volume
from napari_xvr.io.xray import read_xray
from napari_xvr.register import Done, Preprocessing, RegistrationOptions
from napari_xvr.register.initializers import DicomInitializer
from napari_xvr.register.options import RunChecks
from napari_xvr.register.volume_spec import VolumeSpec
from napari_xvr.register.workflows.one_xray import register_xray
from napari_xvr.synthetic import DENSITY
from napari_xvr.train import TrainConfig, TrainStep, train

CUDA = pytest.param(
    "cuda",
    marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")],
)
DEVICES = ["cpu", CUDA]
TINY = {**TRAIN_TINY, "n_warmup_itrs": 1, "n_grad_accum_itrs": 1, "n_drr_every_itrs": 1}


@pytest.fixture(scope="module")
def subject(example_volume):
    return read_volume(example_volume[0], example_volume[1])


def _weighted_sum(drr, rot, xyz, weights):
    pose = convert(rot, xyz, parameterization="euler_angles", convention="ZXY")
    return (drr(pose) * weights).sum()


@pytest.mark.parametrize("device", DEVICES)
def test_fast_renderer_gradients_against_autograd_and_finite_differences(subject, device):
    kw = dict(sdd=1020.0, height=48, delx=8.0, voxel_shift=0.5)
    fast = FastDRR(subject, **kw).to(device)
    reference = DRR(subject, renderer="trilinear", **kw).to(device)
    weights = torch.linspace(-1.0, 2.0, 48 * 48, device=device).view(1, 1, 48, 48)
    rot0 = torch.tensor([[0.15, -0.1, 0.05]], device=device)
    xyz0 = torch.tensor([[4.0, 845.0, -6.0]], device=device)
    grads = []
    for drr in (fast, reference):  # the hand-written backward against DiffDRR's autograd
        rot, xyz = rot0.clone().requires_grad_(), xyz0.clone().requires_grad_()
        _weighted_sum(drr, rot, xyz, weights).backward()
        grads.append(torch.cat([rot.grad[0], xyz.grad[0]]))
    for part in (slice(0, 3), slice(3, 6)):
        assert (grads[0][part] - grads[1][part]).norm() / grads[1][part].norm() < 0.05
    fast64, w64 = fast.double(), weights.double()  # ... and against finite differences
    rot, xyz = rot0.double().requires_grad_(), xyz0.double().requires_grad_()
    _weighted_sum(fast64, rot, xyz, w64).backward()
    analytic = torch.cat([rot.grad[0], xyz.grad[0]])
    numeric = torch.zeros(6, dtype=torch.float64, device=device)
    with torch.no_grad():
        for i, h in enumerate([2e-3] * 3 + [0.5] * 3):
            step = torch.zeros(6, dtype=torch.float64, device=device)
            step[i] = h
            r, t = rot0.double(), xyz0.double()
            numeric[i] = (
                _weighted_sum(fast64, r + step[:3], t + step[3:], w64)
                - _weighted_sum(fast64, r - step[:3], t - step[3:], w64)
            ) / (2 * h)
    for part in (slice(0, 3), slice(3, 6)):
        assert (analytic[part] - numeric[part]).norm() / numeric[part].norm() < 0.03


@pytest.mark.parametrize("device", DEVICES)
def test_registration_ends_under_1_mm(registration_volume, synthetic_cases, device):
    folder, truth = synthetic_cases
    spec = VolumeSpec(registration_volume[0], density=DENSITY, device=device)
    xray = read_xray(folder / "xray_000.dcm")
    drr = spec.make_renderer(spec.read(), xray.intrinsics)
    assert drr.device.type == device
    options = RegistrationOptions(scales="4,2,1", n_itrs="200,100,50", xray_mask="off")
    result = next(
        e.result
        for e in register_xray(
            xray,
            drr,
            DicomInitializer()(xray),
            spec,
            {"type": "dicom"},
            options,
            Preprocessing(),
            checks=RunChecks(mirror_check=False),
        )
        if isinstance(e, Done)
    )
    true = pose_from_dict(truth["cases"]["xray_000"]["true_pose"])
    assert mtre(true, pose_from_dict({"matrix": result.final_pose}), np.asarray(truth["fiducials_mm"])) < 1.0
    assert result.inputs["device"].startswith(device)


@pytest.mark.parametrize("device", DEVICES)
def test_training_steps_and_a_loadable_checkpoint(example_volume, tmp_path, device):
    ct, mask = example_volume
    config = TrainConfig(
        volpath=str(ct),
        maskpath=str(mask),
        outpath=str(tmp_path / "run"),
        n_total_itrs=2,
        n_save_every_itrs=2,
        device=device,
        **TINY,
    )
    steps = [e for e in train(config) if isinstance(e, TrainStep)]
    assert len(steps) == 2 and all(np.isfinite(s.loss) for s in steps)
    saved = sorted((tmp_path / "run").glob("*.pth"))[-1]
    ckpt = torch.load(saved, weights_only=True)
    assert all(t.device.type == "cpu" for t in ckpt["model_state_dict"].values())
    assert json.loads(json.dumps(ckpt["config"], default=str))["device"] == device
