"""The regressor, the sampler and the ITK warp on their own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_xvr.errors import XvrInputError
from napari_xvr.geometry import PARAMETERIZATIONS, pose_from_zxy
from napari_xvr.train.network import PoseRegressor
from napari_xvr.train.sampler import prior_centre, random_poses, sample_params


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_every_parameterization_gives_rigid_poses(parameterization):
    torch.manual_seed(0)
    model = PoseRegressor("test_resnet", parameterization, "ZXY", height=32, norm_layer="groupnorm1")
    pose = model(torch.randn(3, 1, 32, 32))
    rot = pose.matrix[:, :3, :3]
    assert pose.matrix.shape == (3, 4, 4)
    assert torch.allclose(rot @ rot.mT, torch.eye(3).expand(3, 3, 3), atol=1e-4)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(3), atol=1e-4)
    target = pose_from_zxy([10.0, -5.0, 2.0], [3.0, 850.0, -4.0])
    model.start_at(target)
    assert torch.allclose(model(torch.randn(2, 1, 32, 32)).matrix, target.matrix.expand(2, 4, 4), atol=1e-3)


def test_unknown_backbone_and_bad_norm_are_clear():
    with pytest.raises(XvrInputError, match="not a timm model"):
        PoseRegressor("no_such_net", "quaternion_adjugate", height=32)
    with pytest.raises(XvrInputError, match="groupnorm1"):
        PoseRegressor("test_resnet", "quaternion_adjugate", height=32, norm_layer="groupnorm")


def test_sampler_ranges_and_wrapping():
    gen = torch.Generator().manual_seed(0)
    ranges = {"r1": (170, 190), "r2": (-15, 15), "r3": (0, 0), "tx": (-1, 1), "ty": (800, 900), "tz": (0, 0)}
    rot, xyz = sample_params(ranges, 2000, gen)
    assert rot[:, 0].min() >= -180 and rot[:, 0].max() < 180
    assert ((rot[:, 0] >= 170) | (rot[:, 0] < -170)).all()  # wrapped across +-180
    assert rot[:, 1].abs().max() <= 15 and (xyz[:, 1] >= 800).all() and (xyz[:, 1] <= 900).all()
    assert len(random_poses(ranges, 4, gen)) == 4
    centre = pose_from_zxy([180, 0, 0], [0, 850, 0]).matrix
    assert torch.allclose(prior_centre(ranges).matrix, centre, atol=1e-4)


@pytest.mark.parametrize("suffix", [".tfm", ".mat", ".h5"])
def test_itk_warp_reframes_poses(tmp_path, suffix):
    import SimpleITK as sitk

    from napari_xvr.train.warp import read_itk_matrix, reframe

    xform = sitk.Euler3DTransform((1.0, 2.0, 3.0), 0.1, -0.2, 0.3, (5.0, -7.0, 11.0))
    path = tmp_path / f"warp{suffix}"
    sitk.WriteTransform(xform, str(path))
    m = read_itk_matrix(path)
    point = np.array([10.0, -20.0, 30.0])
    assert np.allclose(m[:3, :3] @ point + m[:3, 3], xform.TransformPoint(tuple(point)), atol=1e-5)
    # W maps template-world (RAS, centred) points to patient-world ones through the LPS transform
    c_t, c_p = np.array([1.0, 2.0, 3.0]), np.array([-4.0, 5.0, 6.0])
    w = reframe(path, c_t, c_p).matrix[0].double().numpy()
    x_t = np.array([7.0, 8.0, 9.0])
    lps = (x_t + c_t) * [-1, -1, 1]
    expected = np.asarray(xform.TransformPoint(tuple(lps))) * [-1, -1, 1] - c_p
    assert np.allclose(w[:3, :3] @ x_t + w[:3, 3], expected, atol=1e-4)
    inv = reframe(path, c_t, c_p, invert=True).matrix[0].double().numpy()
    assert not np.allclose(inv, w)


def test_non_rigid_warp_is_refused(tmp_path):
    import SimpleITK as sitk

    from napari_xvr.train.warp import read_itk_matrix

    affine = sitk.AffineTransform(3)
    affine.SetMatrix((2.0, 0, 0, 0, 1, 0, 0, 0, 1))
    sitk.WriteTransform(affine, str(tmp_path / "scale.tfm"))
    with pytest.raises(XvrInputError, match="rigid"):
        read_itk_matrix(tmp_path / "scale.tfm")
    (tmp_path / "junk.tfm").write_text("not a transform")
    with pytest.raises(XvrInputError, match="cannot read"):
        read_itk_matrix(tmp_path / "junk.tfm")
