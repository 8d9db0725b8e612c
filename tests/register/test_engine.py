"""The registration engine on a downsampled real CT: events, accuracy, stop, init_only."""

import numpy as np
import pytest

from napari_xvr.evaluate import evaluate_poses
from napari_xvr.geometry import Intrinsics, pose_from_dict
from napari_xvr.io import read_volume, read_xray
from napari_xvr.register import (
    DicomInitializer,
    Done,
    RegistrationOptions,
    Stage,
    Step,
    StopToken,
    register,
    run_to_end,
)
from napari_xvr.render import make_drr
from napari_xvr.synthetic import DENSITY

# DiffDRR's images of exactly this CT (nothing beyond its ends to leave out)
SMALL = RegistrationOptions(scales="4,2,1", xray_mask="off")


@pytest.fixture(scope="module")
def setup(registration_volume, synthetic_cases):
    folder, truth = synthetic_cases
    subject = read_volume(*registration_volume, density=DENSITY)  # as the X-rays were made
    xray = read_xray(folder / "xray_001.dcm")
    drr = make_drr(subject, xray.intrinsics, renderer="fast")
    true = pose_from_dict(truth["cases"]["xray_001"]["true_pose"])
    return drr, xray, true, np.asarray(truth["fiducials_mm"])


def test_recovers_a_synthetic_xray_below_1mm(setup):
    drr, xray, true, fiducials = setup
    init = DicomInitializer()(xray)
    events = list(register(xray, drr, init, SMALL))
    stages = [e for e in events if isinstance(e, Stage)]
    steps = [e for e in events if isinstance(e, Step)]
    assert [s.height for s in stages] == [32, 64, 128]
    assert isinstance(events[-1], Done)
    result = events[-1].result
    assert result.iterations == len(steps) == len(result.trajectory)
    assert steps[0].drr is not None and steps[0].drr.dtype == np.float32
    before = evaluate_poses(true, pose_from_dict({"matrix": result.init_pose}), fiducials, xray.intrinsics)
    after = evaluate_poses(true, pose_from_dict({"matrix": result.final_pose}), fiducials, xray.intrinsics)
    assert before.mtre > 10
    assert after.mtre < 1.0, after
    assert result.similarity > steps[0].similarity
    assert result.iterations < 40  # LM: 21 evaluations here, where Adam takes 108


@pytest.mark.parametrize("optimizer", ["lm", "adam"])
def test_stop_token_ends_within_one_iteration_and_keeps_the_best(setup, optimizer):
    drr, xray, true, fiducials = setup
    stop = StopToken()
    steps = []
    options = RegistrationOptions(scales="4,2,1", optimizer=optimizer)
    for event in register(xray, drr, DicomInitializer()(xray), options, stop=stop):
        if isinstance(event, Step):
            steps.append(event)
            if len(steps) == 5:
                stop.stop()
        if isinstance(event, Done):
            result = event.result
    assert len(steps) == 5 and result.stopped
    assert all(s.stage == 1 for s in steps)
    best = max(steps, key=lambda s: s.similarity)
    assert np.allclose(result.final_pose, best.matrix, atol=1e-4)
    assert result.similarity == pytest.approx(best.similarity)
    assert best.similarity > steps[0].similarity
    if optimizer == "lm":
        assert all(s.damping is not None and np.isnan(s.lr_rot) for s in steps)
    else:
        assert all(s.damping is None and s.lr_rot > 0 for s in steps)


def test_init_only_and_closing_the_generator(setup):
    drr, xray, *_ = setup
    init = DicomInitializer()(xray)
    result = run_to_end(register(xray, drr, init, SMALL, init_only=True, keep_images=True))
    assert result.final_pose is None and result.iterations == 0
    assert result.images["init_drr"].shape == (128, 128)
    gen = register(xray, drr, init, SMALL)
    next(gen), next(gen)
    gen.close()  # a cancelled run leaves nothing behind and raises nothing


def test_intrinsics_rescale_like_diffdrr():
    intr = Intrinsics(1020.0, 256, 200, 1.6, 1.2, 4.0, -2.0)
    drr_like = intr.rescaled(1 / 8)
    assert (drr_like.height, drr_like.width) == (32, 25)
    assert drr_like.delx == pytest.approx(12.8) and drr_like.x0 == 4.0
