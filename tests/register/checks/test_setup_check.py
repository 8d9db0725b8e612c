"""The setup check on X-rays that DiffDRR renders: a CT read the other orientation, an X-ray
upside down, a start from the other side of the patient. Each is named in a `failed` verdict
with its fix; a right set-up is not blamed."""

import numpy as np
import pytest
import torch
from diffdrr.data import read
from diffdrr.drr import DRR

from napari_xvr.geometry import Intrinsics, pose_from_dict, pose_from_zxy, pose_to_zxy
from napari_xvr.io import XRay
from napari_xvr.manual_pose import other_side
from napari_xvr.register import Done, Preprocessing, RegistrationOptions, SetupCheck
from napari_xvr.register.checks.setup_check import other_orientation_pose, upside_down
from napari_xvr.register.checks.trust import verdict_text
from napari_xvr.register.volume_spec import VolumeSpec
from napari_xvr.register.workflows.one_xray import Retrying, register_xray
from napari_xvr.synthetic import DENSITY

DETECTOR = Intrinsics(sdd=1020.0, height=128, width=128, delx=3.2, dely=3.2)
QUICK = RegistrationOptions(scales="8,4", n_itrs="20,10", xray_mask="off")


@pytest.fixture(scope="module")
def ap_xray(registration_volume, synthetic_cases):
    """(an X-ray DiffDRR renders of the CT read AP, its true pose)."""
    ct, _ = registration_volume
    _, truth = synthetic_cases
    true = pose_from_dict(truth["cases"]["xray_000"]["true_pose"])
    drr = DRR(
        read(str(ct), orientation="AP"),
        sdd=DETECTOR.sdd,
        height=DETECTOR.height,
        delx=DETECTOR.delx,
        reverse_x_axis=False,
    )
    with torch.no_grad():
        image = drr(true.to(torch.float32))[0, 0].numpy().astype(np.float32)
    return XRay(image=image, intrinsics=DETECTOR), true


def _register(xray, ct, start, orientation="AP"):
    spec = VolumeSpec(ct, orientation=orientation, density=DENSITY)
    drr = spec.make_renderer(spec.read(), DETECTOR)
    events = list(register_xray(xray, drr, start, spec, {"type": "pose"}, QUICK, Preprocessing()))
    checks = [e for e in events if isinstance(e, SetupCheck)]
    return checks, next(e.result for e in events if isinstance(e, Done))


def _near(true):
    rot, xyz = pose_to_zxy(true)
    return pose_from_zxy(rot + np.array([2.0, -2.0, 1.0]), xyz + np.array([5.0, -5.0, 5.0]))


def test_a_ct_read_pa_for_an_ap_xray_is_named(ap_xray, registration_volume):
    xray, true = ap_xray
    start = other_orientation_pose(_near(true))  # the same camera, in the PA frame
    checks, result = _register(xray, registration_volume[0], start, orientation="PA")
    assert len(checks) == 1 and checks[0].better == "orientation", checks
    assert result.verdict["status"] == "failed"
    assert "--orientation AP" in verdict_text(result)
    assert result.checks["setup"]["tried"]["orientation"] > result.checks["setup"]["similarity"]


def test_an_xray_upside_down_is_named(ap_xray, registration_volume):
    xray, true = ap_xray
    checks, result = _register(upside_down(xray), registration_volume[0], _near(true))
    assert len(checks) == 1 and checks[0].better == "upside_down", checks
    assert result.verdict["status"] == "failed"
    assert "head-foot" in verdict_text(result) and "slice order" in verdict_text(result)


def test_a_right_setup_is_not_blamed(ap_xray, registration_volume):
    xray, true = ap_xray
    checks, result = _register(xray, registration_volume[0], _near(true))
    # at these coarse test scales the result reads suspect, so the check runs, and names nothing
    assert result.verdict["status"] != "ok" and len(checks) == 1, verdict_text(result)
    assert not checks[0].warns and result.checks["setup"]["better"] is None
    assert result.checks["setup"]["similarity"] > max(result.checks["setup"]["tried"].values())
    assert "set up" not in verdict_text(result)


def test_the_other_orientation_pose_is_its_own_inverse_and_a_rotation(ap_xray):
    _, true = ap_xray
    once = other_orientation_pose(true)
    assert torch.allclose(other_orientation_pose(once).matrix, true.matrix)
    rotation = once.matrix[0, :3, :3].double()
    assert torch.det(rotation).item() == pytest.approx(1.0, abs=1e-5)


def test_upside_down_flips_the_rows_and_the_principal_point():
    xray = XRay(
        image=np.arange(12, dtype=np.float32).reshape(3, 4),
        intrinsics=DETECTOR.with_overrides(height=3, width=4, y0=5.0),
    )
    once = upside_down(xray)
    assert np.array_equal(once.image, xray.image[::-1]) and once.intrinsics.y0 == -5.0


def test_a_start_from_the_other_side_is_named_and_a_models_is_recovered(ap_xray, registration_volume):
    """A start that looks from behind the patient (an AP/PA mix-up): the setup check finds the
    X-ray matches far better turned round and the verdict names it; a model's start (a network's
    AP/PA confusion) is then registered again from there and kept, a pose given is not (a mirrored
    X-ray would match from the other side too)."""
    xray, true = ap_xray
    spec = VolumeSpec(registration_volume[0], density=DENSITY)
    drr = spec.make_renderer(spec.read(), DETECTOR)
    start = other_side(_near(true))
    given = list(register_xray(xray, drr, start, spec, {"type": "pose"}, QUICK, Preprocessing()))
    assert not any(isinstance(e, Retrying) for e in given)
    named = next(e.result for e in given if isinstance(e, Done))
    assert named.verdict["status"] == "failed" and "other side" in verdict_text(named)
    assert "recovery" not in named.checks
    events = list(register_xray(xray, drr, start, spec, {"type": "model"}, QUICK, Preprocessing()))
    retried = [e for e in events if isinstance(e, Retrying)]
    assert len(retried) == 1 and retried[0].other_side and "other side" in retried[0].what
    result = next(e.result for e in events if isinstance(e, Done))
    recovery = result.checks["recovery"]
    assert recovery["retried_from"] == "other_side" and recovery["kept"] == "retry", recovery
    assert recovery["first_verdict"]["status"] == "failed"
    assert "other side" in " ".join(recovery["first_verdict"]["reasons"])
    relative = result.final_pose[:3, :3].T @ true.matrix[0, :3, :3].double().numpy()
    degrees = np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1, 1)))
    assert degrees < 5.0, (degrees, verdict_text(result))  # the QUICK scales' accuracy, not 180
