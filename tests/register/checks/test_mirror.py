"""The mirrored-input check on X-rays that DiffDRR itself renders with either flip convention."""

import numpy as np
import pytest
import torch
from diffdrr.data import read
from diffdrr.drr import DRR

from napari_xvr.geometry import Intrinsics, pose_from_dict, pose_from_zxy, pose_to_zxy
from napari_xvr.io import XRay, read_volume
from napari_xvr.register import Done, MirrorCheck, Preprocessing, RegistrationOptions
from napari_xvr.register.checks.mirror import flipped
from napari_xvr.register.volume_spec import VolumeSpec
from napari_xvr.register.workflows.one_xray import register_xray

DETECTOR = Intrinsics(sdd=1020.0, height=128, width=128, delx=3.2, dely=3.2)
QUICK = RegistrationOptions(scales="8,4", n_itrs="20,10")


@pytest.fixture(scope="module")
def made_by_diffdrr(registration_volume, synthetic_cases):
    """(X-ray as DiffDRR renders it by default, the same with reverse_x_axis=True, true pose)."""
    ct, _ = registration_volume
    _, truth = synthetic_cases
    true = pose_from_dict(truth["cases"]["xray_001"]["true_pose"])
    subject = read(str(ct), orientation="AP")  # upstream's reader, upstream's renderer
    images = []
    for reverse in (False, True):
        drr = DRR(
            subject, sdd=DETECTOR.sdd, height=DETECTOR.height, delx=DETECTOR.delx, reverse_x_axis=reverse
        )
        with torch.no_grad():
            images.append(drr(true.to(torch.float32))[0, 0].numpy().astype(np.float32))
    return images[0], images[1], true


def _register(image, ct, true):
    rot, xyz = pose_to_zxy(true)
    start = pose_from_zxy(rot + np.array([3.0, -2.0, 2.0]), xyz + np.array([6.0, -8.0, 5.0]))
    spec = VolumeSpec(ct)
    xray = XRay(image=image, intrinsics=DETECTOR)
    drr = spec.make_renderer(read_volume(ct), DETECTOR)
    events = list(register_xray(xray, drr, start, spec, {"type": "pose"}, QUICK, Preprocessing()))
    checks = [e for e in events if isinstance(e, MirrorCheck)]
    result = next(e.result for e in events if isinstance(e, Done))
    return checks, result


def test_an_xray_of_the_expected_convention_passes(made_by_diffdrr, registration_volume):
    plain, _, true = made_by_diffdrr
    checks, result = _register(plain, registration_volume[0], true)
    assert len(checks) == 1 and not checks[0].mirrored_better
    assert checks[0].similarity > checks[0].mirrored_similarity + 0.05
    assert result.checks["mirror"]["mirrored_better"] is False
    assert "mirror" in result.to_json()["checks"]


def test_an_xray_of_the_other_convention_is_named(made_by_diffdrr, registration_volume):
    _, mirrored, true = made_by_diffdrr
    checks, result = _register(mirrored, registration_volume[0], true)
    assert len(checks) == 1 and checks[0].mirrored_better, checks
    assert result.checks["mirror"]["mirrored_better"] is True
    assert "--reverse_x_axis" in checks[0].message()


def test_flipping_twice_is_the_identity_and_mirrors_the_principal_point():
    xray = XRay(
        image=np.arange(12, dtype=np.float32).reshape(3, 4),
        intrinsics=DETECTOR.with_overrides(height=3, width=4, x0=5.0),
    )
    once = flipped(xray)
    assert np.array_equal(once.image, xray.image[:, ::-1]) and once.intrinsics.x0 == -5.0
    twice = flipped(once)
    assert np.array_equal(twice.image, xray.image) and twice.intrinsics == xray.intrinsics
