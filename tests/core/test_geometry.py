"""Poses and intrinsics follow DiffDRR's convention exactly."""

import numpy as np
import pytest
import torch
from diffdrr.pose import convert

from napari_xvr.errors import XvrInputError
from napari_xvr.geometry import (
    Intrinsics,
    carm_pose,
    pose_from_dict,
    pose_from_matrix,
    pose_from_params,
    pose_to_dict,
    reorient_matrix,
)


def test_pose_dict_round_trip_keeps_matrix_and_angles():
    pose = carm_pose(23.0, -7.5, 840.0)
    data = pose_to_dict(pose)
    assert np.allclose(data["rotation_deg_zxy"], [23.0, -7.5, 0.0], atol=1e-4)
    assert np.allclose(data["translation_mm"], [0.0, 840.0, 0.0], atol=1e-3)
    again = pose_from_dict(data)
    assert torch.allclose(again.matrix, pose.matrix, atol=1e-5)


def test_carm_pose_is_diffdrrs_zxy_convert_in_degrees():
    expected = convert(
        torch.tensor([[10.0, 5.0, 0.0]]),
        torch.tensor([[0.0, 850.0, 0.0]]),
        parameterization="euler_angles",
        convention="ZXY",
        degrees=True,
    )
    assert torch.allclose(carm_pose(10.0, 5.0, 850.0).matrix, expected.matrix)
    pa = carm_pose(10.0, 5.0, 850.0, orientation="PA")
    assert np.allclose(pose_to_dict(pa)["translation_mm"], [0.0, -850.0, 0.0], atol=1e-3)


@pytest.mark.parametrize("parameterization", ["quaternion", "rotation_6d", "axis_angle"])
def test_other_parameterizations_round_trip(parameterization):
    pose = carm_pose(12.0, -4.0, 800.0)
    rot, xyz = pose.convert(parameterization)
    again = pose_from_params(rot[0].numpy(), xyz[0].numpy(), parameterization)
    assert torch.allclose(again.matrix, pose.matrix, atol=1e-4)


def test_reorient_matches_diffdrr_read(example_volume):
    from napari_xvr.io import read_volume

    for orientation in ("AP", "PA"):
        subject = read_volume(example_volume[0], orientation=orientation)
        assert torch.equal(subject.reorient, reorient_matrix(orientation))


def test_bad_poses_and_intrinsics_are_user_errors():
    with pytest.raises(XvrInputError, match="4x4"):
        pose_from_matrix(np.eye(3))
    with pytest.raises(XvrInputError, match="rotation"):
        pose_from_matrix(np.diag([1.0, 1.0, -1.0, 1.0]))
    with pytest.raises(XvrInputError, match="NaN"):
        pose_from_matrix(np.full((4, 4), np.nan))
    with pytest.raises(XvrInputError, match="sdd"):
        Intrinsics(sdd=-1.0, height=10, width=10, delx=1.0, dely=1.0)
    intr = Intrinsics(sdd=1000.0, height=200, width=100, delx=0.5, dely=0.25)
    half = intr.rescaled(0.5)
    assert (half.height, half.width, half.delx, half.dely) == (100, 50, 1.0, 0.5)


def test_a_coarser_grid_covers_the_same_detector_centred():
    from napari_xvr.geometry import grid_placement

    # 256 px of 1.6 mm shown as 64 px: 6.4 mm pixels whose first centre sits 2.4 mm in
    pixel, offset = grid_placement((256, 200), (1.6, 1.6), (64, 50))
    assert pixel == pytest.approx((6.4, 6.4))
    assert offset == pytest.approx((2.4, 2.4))
    first = np.array(offset) - np.array(pixel) / 2  # its first pixel's outer edge
    assert first == pytest.approx((-0.8, -0.8))  # = the detector's outer edge
    # the same grid: no offset; a given pixel size (a rounded preview) keeps centres aligned
    assert grid_placement((10, 10), (1.0, 2.0), (10, 10)) == ((1.0, 2.0), (0.0, 0.0))
    pixel, offset = grid_placement((255,), (1.0,), (64,), pixel=(4.0,))
    assert offset[0] + 63 * pixel[0] / 2 == pytest.approx(254 / 2)
