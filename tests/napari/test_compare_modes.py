"""The Register widget's comparison control after a real registration of the sample X-ray:
each mode shows the image it promises, over the X-ray, and a new run clears it."""

from __future__ import annotations

import numpy as np
import pytest

from napari_xvr.compare import checkerboard, difference
from napari_xvr.geometry import pose_from_dict, pose_from_zxy, pose_to_zxy

pytestmark = pytest.mark.gui


def test_each_comparison_mode_shows_its_image(make_napari_viewer, qtbot, artifacts):
    from napari_xvr.napari._register_widget import RegisterWidget

    viewer = make_napari_viewer(show=True)
    for key in ("chest_ct", "chest_xray"):
        viewer.open_sample("napari-xvr", key)
    xray = viewer.layers["chest X-ray (synthetic)"]
    rot, xyz = pose_to_zxy(pose_from_dict(xray.metadata["true_pose"]))
    xray.metadata["pose"] = {"matrix": pose_from_zxy(rot + 1.0, xyz + 3.0).matrix[0].tolist()}
    reg = RegisterWidget(viewer)
    viewer.window.add_dock_widget(reg)
    reg.init.value = "pose in X-ray metadata"
    reg.scales.value, reg.n_itrs.value = "8,4", "20,10"
    reg.run_button.native.click()
    qtbot.waitUntil(lambda: not reg.running and reg.result is not None, timeout=240_000)
    overlay = viewer.layers[reg.overlay_name]
    drr = np.asarray(overlay.data, dtype=np.float64)
    # radiological display: this AP X-ray is stored with the patient's left on its left, so the
    # view is mirrored (the left edge's letter L then shows on the viewer's right)
    letters = list(viewer.layers[f"{xray.name} orientation"].features["label"])
    assert letters[0] == "L" and letters[1] == "R", letters

    def horizontal() -> str:
        value = viewer.scene.camera.orientation2d[1]
        return str(getattr(value, "value", value))

    assert horizontal() == "left"
    viewer.screenshot(str(artifacts / "radiological.png"), canvas_only=True)
    reg.radiological.value = False
    assert horizontal() == "right"  # as stored
    reg.radiological.value = True
    shown = {}
    for mode in ("checkerboard", "difference", "edges"):
        reg.compare.mode.value = mode
        layer = viewer.layers[f"{reg.overlay_name} ({mode})"]
        assert not overlay.visible and layer.data.shape == xray.data.shape
        np.testing.assert_allclose(layer.scale, xray.scale)
        shown[mode] = np.asarray(layer.data)
        viewer.screenshot(str(artifacts / f"compare_{mode}.png"), canvas_only=True)
    reg.compare.mode.value = "checkerboard"
    reg.compare.tiles.value = 4
    board = viewer.layers[f"{reg.overlay_name} (checkerboard)"].data
    np.testing.assert_allclose(board, checkerboard(xray.data, drr, 4), atol=1e-6)
    np.testing.assert_allclose(shown["difference"], difference(xray.data, drr), atol=1e-5)
    assert set(np.unique(shown["edges"])) <= {0.0, 1.0} and 0.02 < shown["edges"].mean() < 0.3
    reg.compare.mode.value = "flicker"
    assert not any(
        f"({m})" in layer.name for layer in viewer.layers for m in ("checkerboard", "difference", "edges")
    )
    seen = set()
    qtbot.waitUntil(lambda: seen.add(overlay.visible) or len(seen) == 2, timeout=5_000)
    reg.compare.mode.value = "overlay"
    assert overlay.visible
    reg.compare.mode.value = "edges"
    reg.run_button.native.click()  # a new run: the last result's comparison goes
    assert not any("(edges)" in layer.name for layer in viewer.layers) and overlay.visible
    qtbot.waitUntil(lambda: not reg.running, timeout=240_000)
    assert f"{reg.overlay_name} (edges)" in viewer.layers  # ... and the new one comes
