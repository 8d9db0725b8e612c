"""Joint (multi-view) registration on biplane X-rays rendered by DiffDRR's own Siddon DRR."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from napari_xvr.errors import XvrInputError
from napari_xvr.evaluate import anatomy_tre, mtre
from napari_xvr.geometry import pose_from_dict
from napari_xvr.io.result import read_result
from napari_xvr.io.xray import read_xray
from napari_xvr.register.engine import Preprocessing, register, run_to_end
from napari_xvr.register.initializers import DicomInitializer, FixedInitializer
from napari_xvr.register.optimiser.lm import LMView, PoseLM
from napari_xvr.register.options import RegistrationOptions
from napari_xvr.register.volume_spec import VolumeSpec
from napari_xvr.register.workflows.joint import joint_init, relative_poses

FAST = RegistrationOptions(scales="4,2,1", n_itrs="30,20,10")


@pytest.fixture(scope="module")
def biplane(biplane_cases):
    folder, truth = biplane_cases
    case = folder / "case_000"
    xrays = [read_xray(case / "view_0.dcm"), read_xray(case / "view_1.dcm")]
    trues = [pose_from_dict(v["true_pose"]) for v in truth["cases"]["case_000"]["views"].values()]
    return case, xrays, trues, truth


@pytest.fixture(scope="module")
def renderer(registration_volume, biplane):
    from napari_xvr.io.volume import read_volume

    spec = VolumeSpec(registration_volume[0])
    return spec, spec.make_renderer(read_volume(spec.volume), biplane[1][0].intrinsics)


def test_relative_poses_from_the_headers_are_the_true_geometry(biplane):
    _, xrays, trues, _ = biplane
    relatives = relative_poses(xrays, "dicom")
    np.testing.assert_allclose(relatives[0], np.eye(4), atol=1e-12)
    true_relative = np.linalg.inv(trues[0].matrix[0].double().numpy()) @ trues[1].matrix[0].double().numpy()
    np.testing.assert_allclose(relatives[1], true_relative, rtol=1e-5, atol=1e-3)  # float32 poses


def test_a_geometry_file_gives_the_same_relative_poses(biplane, tmp_path):
    _, xrays, trues, _ = biplane
    path = tmp_path / "geometry.json"
    path.write_text(
        json.dumps(
            {
                "views": [
                    {"xray": "view_1.dcm", "pose": {"matrix": trues[1].matrix[0].tolist()}},
                    {"xray": "view_0.dcm", "pose": {"matrix": trues[0].matrix[0].tolist()}},
                ]
            }
        )
    )
    np.testing.assert_allclose(
        relative_poses(xrays, path)[1], relative_poses(xrays, "dicom")[1], rtol=1e-5, atol=1e-3
    )
    path.write_text(json.dumps({"views": [{"xray": "view_0.dcm", "pose": {"matrix": np.eye(4).tolist()}}]}))
    with pytest.raises(XvrInputError, match="no pose for the X-ray view_1"):
        relative_poses(xrays, path)
    with pytest.raises(XvrInputError, match="at least 2 X-rays"):
        relative_poses(xrays[:1])


def test_init_from_any_view_lands_on_the_first_views_pose(biplane):
    _, xrays, _, _ = biplane
    relatives = relative_poses(xrays)
    header = DicomInitializer()
    from_view_1 = joint_init(header, xrays, relatives, init_view=1)
    np.testing.assert_allclose(from_view_1.matrix[0].numpy(), header(xrays[0]).matrix[0].numpy(), atol=1e-3)
    with pytest.raises(XvrInputError, match="--init_view 2"):
        joint_init(header, xrays, relatives, init_view=2)


def test_joint_similarity_gradient_and_hessian_are_the_views_means(biplane, renderer):
    """The joint LM evaluation equals the mean of each view's own single-view evaluation."""
    from napari_xvr.register.engine import _preparer
    from napari_xvr.register.optimiser.similarity import Similarity

    _, xrays, trues, _ = biplane
    _, drr = renderer
    relatives = relative_poses(xrays)
    small = xrays[0].intrinsics.rescaled(0.25)
    prep = _preparer((small.height, small.width), False)
    views, singles = [], []
    for xray, relative in zip(xrays, relatives, strict=True):
        fixed = prep(xray.preprocessed(0, False, False))
        rel = torch.as_tensor(relative, dtype=torch.float32)
        views.append(LMView(fixed, prep, Similarity(), small, rel))
        singles.append((fixed, rel))
    joint = PoseLM(drr, views[0].fixed, prep, Similarity(), step_mm=small.delx / 6, views=views)
    params = joint.params_of(trues[0]) + torch.tensor(
        [0.02, -0.01, 0.01, 3.0, -2.0, 4.0], dtype=torch.float64
    )
    both = joint.evaluate(params)
    alone = []
    for fixed, rel in singles:
        one = PoseLM(
            drr,
            fixed,
            prep,
            Similarity(),
            step_mm=small.delx / 6,
            views=[LMView(fixed, prep, Similarity(), small, rel)],
        )
        alone.append(one.evaluate(params))
    assert both.similarity == pytest.approx(np.mean([a.similarity for a in alone]), abs=1e-6)
    torch.testing.assert_close(both.gradient, sum(a.gradient for a in alone) / 2, rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(both.hessian, sum(a.hessian for a in alone) / 2, rtol=1e-3, atol=1e-6)
    assert both.view_similarities == pytest.approx([a.similarity for a in alone], abs=1e-6)


def test_two_views_pin_the_depth_one_view_leaves_loose(biplane, renderer):
    """The predicted spread along view 0's ray, at the true pose: both views against view 0."""
    _, xrays, trues, _ = biplane
    _, drr = renderer
    at_truth = RegistrationOptions(scales="2", n_itrs="1")
    joint = run_to_end(
        register(xrays, drr, trues[0], at_truth, Preprocessing(), relatives=relative_poses(xrays))
    )
    alone = run_to_end(register(xrays[0], drr, trues[0], at_truth, Preprocessing()))
    depth = [r.checks["uncertainty"]["depth_sd_mm"] for r in (joint, alone)]
    assert depth[0] < 0.5 * depth[1]


def test_a_view_that_does_not_see_the_volume_is_refused_by_name(biplane, renderer):
    _, xrays, _, _ = biplane
    _, drr = renderer
    far = np.eye(4)
    far[1, 3] = 5000.0  # the second camera 5 m away, looking past the patient
    init = DicomInitializer()(xrays[0])
    with pytest.raises(XvrInputError, match="view_1.dcm"):
        run_to_end(register(xrays, drr, init, FAST, Preprocessing(), relatives=[np.eye(4), far]))


def xvr(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "napari_xvr.cli", *map(str, args)],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=900,
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def joint_run(biplane, registration_volume, tmp_path_factory):
    case = biplane[0]
    out = tmp_path_factory.mktemp("joint")
    xvr(
        "register",
        "dicom",
        case,
        "-v",
        registration_volume[0],
        "-o",
        out,
        "--joint",
        "--scales",
        "4,2,1",
        "--saveimg",
        "--verbose",
        "0",
    )
    return out


def test_cli_joint_is_sub_half_mm_in_every_view(biplane, joint_run):
    case, xrays, trues, truth = biplane
    folder = joint_run / "view_0_joint2"
    data = read_result(folder)
    relatives = relative_poses(xrays)
    assert [v["xray"] for v in data["views"]] == [str(case / "view_0.dcm"), str(case / "view_1.dcm")]
    assert data["inputs"]["xrays"] == [str((case / n).resolve()) for n in ("view_0.dcm", "view_1.dcm")]
    assert data["initialization"]["geometry"] == "dicom"
    assert "mirror" not in data["checks"] and data["verdict"]["status"] == "ok"
    fiducials = np.asarray(truth["fiducials_mm"])
    for k, name in enumerate(("0_view_0", "1_view_1")):
        view = read_result(folder / "views" / name)
        pose = pose_from_dict(view["final_pose"])
        assert view["checks"]["joint"]["view"] == k
        np.testing.assert_allclose(  # each view's pose is the joint pose times its relative pose
            pose.matrix[0].double().numpy(),
            np.asarray(data["final_pose"]["matrix"]) @ relatives[k],
            rtol=1e-5,
            atol=1e-3,
        )
        assert anatomy_tre(trues[k], pose, fiducials) < 0.5
        assert mtre(trues[k], pose, fiducials) < 1.0  # xvr's: the camera's error at its source
        assert data["views"][k]["similarity"] > 0.8
        for png in ("xray.png", "final_drr.png", "overlay.png"):
            assert (folder / "views" / name / png).is_file()


def test_cli_joint_restarts_from_a_joint_result(biplane, joint_run, registration_volume, tmp_path):
    case = biplane[0]
    ct = registration_volume[0]
    folder = joint_run / "view_0_joint2"
    again = xvr(
        "register",
        "restart",
        case,
        "-v",
        ct,
        "-o",
        joint_run,
        "--joint",
        "-r",
        folder,
        "--init_only",
        check=False,
    )
    assert again.returncode != 0 and "already hold" in again.stderr
    xvr(
        "register",
        "restart",
        case,
        "-v",
        ct,
        "-o",
        tmp_path,
        "--joint",
        "-r",
        folder,
        "--init_only",
        "--verbose",
        "0",
    )
    restarted = read_result(tmp_path / "view_0_joint2")
    np.testing.assert_allclose(
        restarted["init_pose"]["matrix"], read_result(folder)["final_pose"]["matrix"], atol=1e-4
    )


def test_cli_joint_refuses_one_xray_and_a_bad_init_view(biplane, registration_volume, tmp_path):
    case, _, _, _ = biplane
    ct, _ = registration_volume
    one = xvr("register", "dicom", case / "view_0.dcm", "-v", ct, "-o", tmp_path, "--joint", check=False)
    assert one.returncode != 0 and "--joint needs at least 2 X-rays" in one.stderr
    bad = xvr(
        "register",
        "fixed",
        case,
        "-v",
        ct,
        "-o",
        tmp_path,
        "--joint",
        "--rot",
        "0,0,0",
        "--xyz",
        "0,850,0",
        "--init_view",
        "5",
        check=False,
    )
    assert bad.returncode != 0 and "--init_view 5" in bad.stderr
    assert "Traceback" not in one.stderr + bad.stderr


def test_fixed_pose_for_the_second_view(biplane):
    """`xvr register fixed --joint --init_view 1`: the fixed pose is the lateral view's."""
    _, xrays, trues, _ = biplane
    relatives = relative_poses(xrays)
    fixed = FixedInitializer([90.0, 0.0, 0.0], [0.0, 850.0, 0.0])
    first = joint_init(fixed, xrays, relatives, init_view=1)
    np.testing.assert_allclose(
        first.matrix[0].double().numpy() @ relatives[1], fixed(xrays[1]).matrix[0].double().numpy(), atol=1e-3
    )
