"""DRR and pose widget: fast previews while dragging, the left-right flip, the 3D C-arm view and
a scrollable dock, driven in the real viewer on the sample chest CT."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QAbstractSlider, QScrollArea

from napari_xvr.geometry import pose_from_dict, pose_to_zxy

pytestmark = pytest.mark.gui

XRAY = "chest X-ray (synthetic)"


def _drr_widget(viewer, qtbot, from_xray: bool = True):
    _, drr = viewer.window.add_plugin_dock_widget("napari-xvr", "DRR and pose")
    xray = viewer.layers[XRAY]
    if from_xray:
        drr.intrinsics_from.value = xray
    rot, xyz = pose_to_zxy(pose_from_dict(xray.metadata["true_pose"]))
    drr.set_pose(rot, xyz)
    qtbot.waitUntil(lambda: drr.drr_name in viewer.layers and drr.idle, timeout=120_000)
    return drr


def _edges(layer) -> np.ndarray:
    """World (row, col) of a 2D image layer's outer pixel edges: [[top, left], [bottom, right]]."""
    scale, translate = np.asarray(layer.scale), np.asarray(layer.translate)
    shape = np.asarray(layer.data.shape)
    return np.stack([translate - 0.5 * scale, translate + (shape - 0.5) * scale])


def test_drag_renders_fast_previews_then_full(sample_viewer, qtbot, artifacts):
    from napari_xvr.fastdrr import FastDRR
    from napari_xvr.napari.api import render_drr

    viewer = sample_viewer
    drr = _drr_widget(viewer, qtbot)
    layer = viewer.layers[drr.drr_name]
    assert layer.data.shape == (256, 256) and not drr.shown_preview
    assert all(isinstance(module, FastDRR) for module in drr._cache.values()), drr._cache
    full_edges = _edges(layer)
    shown = []  # (shape, world edges, preview) of every image the layer showed
    layer.events.data.connect(
        lambda _e: shown.append((layer.data.shape, _edges(layer), layer.metadata["preview"]))
    )
    ticks = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    # a drag: the slider held, its value moving
    (slider,) = drr.controls["r1"].native.findChildren(QAbstractSlider)
    start = drr.controls["r1"].value
    slider.setSliderDown(True)
    for step in range(1, 6):
        drr.controls["r1"].value = start + 2 * step
        assert drr._timer.isActive() and not drr.idle  # the full DRR waits for the drag's end
        qtbot.wait(60)
    qtbot.waitUntil(lambda: any(preview for *_, preview in shown), timeout=60_000)
    previews = [(shape, edges) for shape, edges, preview in shown if preview]
    assert all(shape == (64, 64) for shape, _ in previews)
    for _, edges in previews:  # stretched over the full detector
        np.testing.assert_allclose(edges, full_edges, atol=1e-6)
    slider.setSliderDown(False)  # released: the full DRR at once
    qtbot.waitUntil(lambda: drr.idle and not drr.shown_preview, timeout=60_000)
    timer.stop()
    assert layer.data.shape == (256, 256) and not layer.metadata["preview"]
    np.testing.assert_allclose(_edges(layer), full_edges, atol=1e-6)
    np.testing.assert_allclose(layer.metadata["pose"]["rotation_deg_zxy"][0], start + 10, atol=0.5)
    expected = render_drr(drr.volume.value, drr.pose_matrix(), drr.intrinsics())
    np.testing.assert_allclose(layer.data, expected, rtol=1e-4, atol=1e-3 * expected.max())
    assert shown[-1][0] == (256, 256) and not shown[-1][2]
    gaps = np.diff(ticks)
    assert len(ticks) > 10 and gaps.max() < 1.5, f"the main thread stalled {gaps.max():.2f} s"
    # quick changes without a held slider (keys, wheel) preview too, then render in full
    shown.clear()
    for _ in range(4):
        drr.controls["r2"].value = drr.controls["r2"].value + 1
    qtbot.waitUntil(lambda: drr.idle, timeout=60_000)
    assert [shape for shape, *_ in shown][0] == (64, 64) and shown[-1][0] == (256, 256)
    timings = {kind: 1000 * float(np.median(values)) for kind, values in drr.timings.items()}
    (artifacts / "drr_render_ms.json").write_text(json.dumps(timings, indent=1), encoding="utf-8")
    print(f"DRR render medians (ms) on the sample CT: {timings}, max UI gap {gaps.max():.3f} s")
    assert timings["preview"] < timings["full"]


def test_flip_mirrors_the_drr(sample_viewer, qtbot):
    from napari_xvr import defaults

    viewer = sample_viewer
    drr = _drr_widget(viewer, qtbot)
    _, reg = viewer.window.add_plugin_dock_widget("napari-xvr", "Register")
    assert drr.reverse_x_axis.value == defaults.reg("reverse_x_axis") == reg.reverse_x_axis.value
    assert drr.reverse_x_axis.label == reg.reverse_x_axis.label == "flip DRR left-right"
    assert drr.reverse_x_axis.tooltip == reg.reverse_x_axis.tooltip
    layer = viewer.layers[drr.drr_name]
    plain = layer.data.copy()
    drr.reverse_x_axis.value = not drr.reverse_x_axis.value
    qtbot.waitUntil(
        lambda: drr.idle and layer.metadata["reverse_x_axis"] == drr.reverse_x_axis.value, timeout=120_000
    )
    flipped = layer.data
    assert not np.allclose(flipped, plain, atol=1e-2 * plain.max())
    np.testing.assert_allclose(flipped, np.fliplr(plain), rtol=1e-4, atol=1e-4 * plain.max())


def _in_view(viewer, points: np.ndarray) -> bool:
    """Every point lies inside the canvas for the 3D camera (orthographic)."""
    camera = viewer.scene.camera
    view, up = np.asarray(camera.view_direction), np.asarray(camera.up_direction)
    right = np.cross(view, up)
    offsets = (points - np.asarray(camera.center)) * camera.zoom
    height, width = viewer.canvas.size
    return bool(np.all(np.abs(offsets @ up) < height / 2) and np.all(np.abs(offsets @ right) < width / 2))


def test_carm_view_3d(sample_viewer, qtbot, artifacts):
    from napari_xvr.napari._carm_view import CARM, DETECTOR, LABELS, SOURCE

    viewer = sample_viewer
    viewer.window.resize(1600, 1000)
    drr = _drr_widget(viewer, qtbot)
    xray, drr_layer = viewer.layers[XRAY], viewer.layers[drr.drr_name]
    drr.detector_view.value = False  # the 3D layers as the user left them (the 2D view: tested below)
    mask = viewer.layers["chest_mask_4x4x2"]
    mask.visible = False  # a user's choice, kept
    before = {layer.name: layer.visible for layer in viewer.layers}
    drr.show_carm.value = True
    qtbot.waitUntil(lambda: DETECTOR in viewer.layers and drr.idle, timeout=120_000)
    qtbot.wait(300)
    assert viewer.dims.ndisplay == 3
    assert not xray.visible and not drr_layer.visible and not mask.visible
    assert viewer.layers["chest_ct_4x4x2"].visible
    labels = viewer.layers[LABELS]
    assert list(labels.features["label"]) == ["X-ray source", f"detector ({XRAY})"]
    assert labels.text.visible
    # the X-ray ("intrinsics from") lies on the detector rectangle, in world mm
    detector = viewer.layers[DETECTOR]
    np.testing.assert_array_equal(detector.data[0], xray.data)
    corners = viewer.layers[CARM].data[0][:4]
    h, w = xray.data.shape
    edges = np.array([[0, -0.5, -0.5], [0, -0.5, w - 0.5], [0, h - 0.5, w - 0.5], [0, h - 0.5, -0.5]])
    world = np.array([detector.data_to_world(p) for p in edges])
    np.testing.assert_allclose(world, corners, atol=1e-3)
    source = viewer.layers[SOURCE].data[0]
    np.testing.assert_allclose(np.linalg.norm(source - corners.mean(axis=0)), 1020.0, rtol=1e-3)
    # reframed: the volume, the source and the detector are all in view
    lo, hi = np.asarray(viewer.layers["chest_ct_4x4x2"].extent.world)
    box = np.array([[(lo, hi)[i >> k & 1][k] for k in range(3)] for i in range(8)])
    assert _in_view(viewer, np.vstack([box, corners, source[None]]))
    shot = viewer.screenshot("/tmp/drr_view_3d.png", canvas_only=False)
    viewer.screenshot(str(artifacts / "drr_view_3d.png"), canvas_only=False)
    canvas = viewer.screenshot(canvas_only=True)[..., :3].astype(int)
    yellow = (canvas[..., 0] > 180) & (canvas[..., 1] > 180) & (canvas[..., 2] < 100)
    gray = (np.ptp(canvas, axis=-1) < 12) & (canvas.mean(axis=-1) > 60)
    assert shot.std() > 5 and yellow.sum() > 200 and gray.sum() > 5000, (yellow.sum(), gray.sum())
    # without an X-ray chosen the detector shows the DRR, and follows the pose
    drr.intrinsics_from.value = None
    qtbot.waitUntil(
        lambda: drr.idle and list(labels.features["label"])[1] == "detector (DRR)", timeout=120_000
    )
    np.testing.assert_allclose(detector.data[0], drr_layer.data)
    moved = viewer.layers[SOURCE].data[0].copy()
    drr.controls["r1"].value = drr.controls["r1"].value + 30
    qtbot.waitUntil(
        lambda: drr.idle and not np.allclose(viewer.layers[SOURCE].data[0], moved), timeout=120_000
    )
    # a 2D layer added meanwhile is hidden too
    extra = viewer.add_image(np.zeros((8, 8), np.float32), name="a 2D image")
    assert not extra.visible
    drr.show_carm.value = False
    assert viewer.dims.ndisplay == 2
    assert all(viewer.layers[name].visible == seen for name, seen in before.items()), {
        layer.name: layer.visible for layer in viewer.layers
    }
    assert extra.visible
    assert not any(viewer.layers[name].visible for name in (CARM, SOURCE, LABELS))
    assert DETECTOR not in viewer.layers


def test_dock_scrolls_and_fits_with_other_docks(make_napari_viewer, qtbot, artifacts):
    from napari_xvr.napari._dock import StatusLine

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1600, 1000)
    for key in ("chest_ct", "chest_xray"):
        viewer.open_sample("napari-xvr", key)
    _, drr = viewer.window.add_plugin_dock_widget("napari-xvr", "DRR and pose")
    for name in ("Register", "Evaluate and animate", "Train"):
        viewer.window.add_plugin_dock_widget("napari-xvr", name)
    qtbot.wait(300)
    scroll = drr.volume.native.parent()
    while scroll is not None and not isinstance(scroll, QScrollArea):
        scroll = scroll.parent()
    assert scroll is not None and drr.native.isAncestorOf(scroll), "the options do not scroll"
    assert 150 < drr.native.minimumSizeHint().height() < 250  # a few rows; the rest scrolls
    inner = scroll.widget()
    assert scroll.viewport().width() >= inner.minimumSizeHint().width()  # no row cut off
    assert isinstance(drr.status, StatusLine)
    drr.status.value = "a long status line " * 20  # wrapped to two lines, then elided
    qtbot.wait(100)
    assert drr.native.width() < 600
    shown = drr.status.native.text().split("\n")
    assert len(shown) == 2 and shown[0].startswith("a long status line") and shown[1].endswith("\u2026")
    drr.status.value = "short"
    assert drr.status.native.text() == "short"
    for name in ("pose_matrix", "set_pose_matrix", "set_pose", "pose_params", "intrinsics", "render"):
        assert callable(getattr(drr, name))
    assert isinstance(drr.idle, bool) and drr.drr_name and drr.show_carm and len(drr.controls) == 6
    viewer.screenshot(str(artifacts / "drr_dock_with_others.png"), canvas_only=False)
    qtbot.waitUntil(lambda: drr.idle, timeout=60_000)


def test_detector_fields_show_the_xrays_intrinsics(sample_viewer):
    """The fields showed 1.60 mm while the DRR used the X-ray's own 1.2 mm."""
    from napari_xvr.geometry import Intrinsics
    from napari_xvr.io import XRay
    from napari_xvr.napari._layers import xray_layer

    viewer = sample_viewer
    _, drr = viewer.window.add_plugin_dock_widget("napari-xvr", "DRR and pose")
    own = Intrinsics(sdd=1100.0, height=200, width=180, delx=1.2, dely=1.3, x0=4.0, y0=-2.0)
    data, kwargs, _ = xray_layer(
        XRay(image=np.zeros((200, 180), np.float32), intrinsics=own), name="other X-ray"
    )
    layer = viewer.add_image(data, **kwargs)
    drr.intrinsics_from.value = layer
    shown = {k: f.value for k, f in drr._detector_fields().items()}
    assert shown == own.to_dict() and drr.intrinsics() == own
    assert not drr.delx.enabled and "other X-ray" in drr.delx.tooltip
    drr.intrinsics_from.value = None  # typed in again: editable, as they were left
    assert drr.delx.enabled and drr.intrinsics().delx == 1.2


def test_the_detector_view_frames_the_drr_without_ct_slices(sample_viewer, qtbot, artifacts):
    """The DRR was drawn over a CT slice, partly off-canvas: the detector view hides the 3D
    layers in 2D and frames the DRR; unticked, they come back as they were."""
    viewer = sample_viewer
    viewer.window.resize(1366, 768)
    viewer.dims.ndisplay = 2
    ct, mask = viewer.layers["chest_ct_4x4x2"], viewer.layers["chest_mask_4x4x2"]
    mask.visible = False  # a user's choice, kept
    drr = _drr_widget(viewer, qtbot)
    assert drr.detector_view.value and not ct.visible and not mask.visible
    layer = viewer.layers[drr.drr_name]
    (r0, c0), (r1, c1) = _edges(layer)
    centre = np.asarray(viewer.scene.camera.center)[-2:]
    np.testing.assert_allclose(centre, [(r0 + r1) / 2, (c0 + c1) / 2], atol=0.05 * (r1 - r0))
    viewer.screenshot(str(artifacts / "detector_view_1366x768.png"), canvas_only=False)
    drr.detector_view.value = False
    assert ct.visible and not mask.visible
