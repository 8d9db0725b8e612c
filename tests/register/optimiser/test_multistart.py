"""Multi-start first scale (`multistart`): the spread of starts, and a far start plain LM misses."""

import numpy as np
import pytest

from napari_xvr.animate import chosen_path
from napari_xvr.errors import XvrInputError
from napari_xvr.evaluate import evaluate_poses
from napari_xvr.geometry import pose_from_dict, pose_from_zxy, pose_to_zxy
from napari_xvr.io import read_volume, read_xray
from napari_xvr.io.result import read_result, read_trajectory
from napari_xvr.register import RegistrationOptions, Stage, Step, register, run_to_end, write_result
from napari_xvr.register.optimiser.multistart import start_poses
from napari_xvr.render import make_drr


def test_start_poses_fill_the_box_around_the_start_reproducibly():
    start = pose_from_zxy([10.0, -5.0, 3.0], [0.0, 850.0, 20.0])
    poses = start_poses(start, 8, rot_deg=20.0, xyz_mm=60.0)
    assert len(poses) == 9 and poses[0] is start
    rot0, xyz0 = pose_to_zxy(start)
    offsets = np.array([np.concatenate(pose_to_zxy(p)) - np.concatenate([rot0, xyz0]) for p in poses[1:]])
    limit = np.array([20.0] * 3 + [60.0] * 3)
    assert (np.abs(offsets) <= limit + 1e-3).all()
    assert (np.abs(offsets).max(axis=0) > 0.5 * limit).all()  # every axis is explored
    assert len({tuple(np.round(o, 3)) for o in offsets}) == 8
    again = start_poses(start, 8, rot_deg=20.0, xyz_mm=60.0)
    assert all(np.allclose(a.matrix, b.matrix) for a, b in zip(poses, again, strict=True))


@pytest.mark.parametrize(
    "bad", [{"multistart": -1}, {"multistart_rot": -5.0}, {"multistart_xyz": float("nan")}]
)
def test_bad_multistart_options_are_named(bad):
    with pytest.raises(XvrInputError, match="--multistart(_rot|_xyz)?"):
        RegistrationOptions(**bad)


def test_multistart_recovers_a_far_start_that_plain_lm_misses(registration_volume, synthetic_cases, tmp_path):
    folder, truth = synthetic_cases
    xray = read_xray(folder / "xray_001.dcm")
    drr = make_drr(read_volume(*registration_volume), xray.intrinsics, renderer="fast")
    true = pose_from_dict(truth["cases"]["xray_001"]["true_pose"])
    fiducials = np.asarray(truth["fiducials_mm"])
    rot, xyz = pose_to_zxy(true)
    start = pose_from_zxy(rot + [-25.0, 20.0, -20.0], xyz + [-70.0, 60.0, -50.0])

    def mtre(result):
        return evaluate_poses(
            true, pose_from_dict({"matrix": result.final_pose}), fiducials, xray.intrinsics
        ).mtre

    plain = run_to_end(register(xray, drr, start, RegistrationOptions(scales="4,2,1")))
    assert mtre(plain) > 10 and plain.multistart is None

    events = list(register(xray, drr, start, RegistrationOptions(scales="4,2,1", multistart=8)))
    result = events[-1].result
    assert mtre(result) < 1.0
    stages = [e for e in events if isinstance(e, Stage)]
    assert [s.n_starts for s in stages] == [9, 1, 1] and stages[0].max_itrs == 9 * 30
    steps = [e for e in events if isinstance(e, Step)]
    assert {s.start for s in steps if s.stage == 1} == set(range(9))
    chosen = result.multistart["chosen"]
    sims = result.multistart["similarities"]
    assert chosen != 0 and sims[chosen] == max(sims) and len(result.multistart["start_poses"]) == 9
    assert {s.start for s in steps if s.stage > 1} == {chosen}
    assert [s.total_itr for s in steps] == list(range(len(steps))) == list(range(result.iterations))

    write_result(result, tmp_path / "r")
    rows = read_trajectory(tmp_path / "r")
    path = chosen_path(rows, read_result(tmp_path / "r"))
    assert len(rows) == len(steps) and 0 < len(path) < len(rows)
    assert {row["start"] for row in path} == {chosen}
    poses = [
        pose_from_zxy([row[k] for k in ("r1", "r2", "r3")], [row[k] for k in ("tx", "ty", "tz")])
        for row in path
    ]
    assert any(np.allclose(p.matrix[0], result.final_pose, atol=1e-3) for p in poses)  # on the path
