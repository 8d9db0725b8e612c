"""A session saved from one viewer reopens in another: the same layers, pose, history and
options, through the DRR widget's Open button and through napari's reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_xvr.geometry import pose_from_dict, pose_to_zxy

pytestmark = pytest.mark.gui

XRAY = "chest X-ray (synthetic)"


def _docked(viewer):
    _, drr = viewer.window.add_plugin_dock_widget("napari-xvr", "DRR and pose")
    return drr


def test_a_saved_session_reopens_the_same(sample_viewer, make_napari_viewer, qtbot, tmp_path):
    viewer = sample_viewer
    drr = _docked(viewer)
    _, reg = viewer.window.add_plugin_dock_widget("napari-xvr", "Register")
    drr.intrinsics_from.value = viewer.layers[XRAY]
    rot, xyz = pose_to_zxy(pose_from_dict(viewer.layers[XRAY].metadata["true_pose"]))
    drr.set_pose(rot + 3.0, xyz + 10.0, "header")
    drr.set_pose(rot, xyz, "landmarks")
    drr.reverse_x_axis.value = True
    reg.scales.value = "8,4"
    qtbot.waitUntil(lambda: drr.idle, timeout=120_000)
    drr.live.value = False
    drr.session.path.value = tmp_path / "work"
    drr.session.save()
    path = tmp_path / "work.xvr-session.json"
    saved = json.loads(path.read_text())
    assert saved["format"] == "napari-xvr session" and len(saved["history"]["entries"]) >= 2
    assert {layer["role"] for layer in saved["layers"]} >= {"volume", "xray"}
    assert saved["options"]["register"]["scales"] == "8,4", saved["options"]

    for how in ("button", "reader"):
        other = make_napari_viewer(show=False)
        again = _docked(other)
        _, reg2 = other.window.add_plugin_dock_widget("napari-xvr", "Register")
        if how == "button":
            again.session.path.value = path
            again.session.open_button.clicked.emit()
        else:
            other.open(path, plugin="napari-xvr")
        opened = [layer.name for layer in other.layers if layer.metadata.get("path")]
        assert opened == [layer.name for layer in viewer.layers if layer.metadata.get("path")]
        np.testing.assert_allclose(again.pose_matrix(), drr.pose_matrix(), atol=1e-4)
        assert [e.source for e in again.history.entries] == [e.source for e in drr.history.entries]
        assert again.live.value is False and again.reverse_x_axis.value is True
        assert again.intrinsics_from.value is other.layers[XRAY]
        assert reg2.scales.value == "8,4"
        again.undo_button.clicked.emit()  # the history came back, not only the pose
        assert again.history.current.source == "header"
