"""The Register widget's view: the X-ray and its overlay alone, orientation labels that follow the
pose, smooth coarse DRRs, stage markers, options locked during a run, and the mirror warning."""

from __future__ import annotations

import numpy as np

from napari_xvr.geometry import pose_from_dict, pose_from_matrix, pose_to_zxy
from napari_xvr.napari.api import intrinsics_of
from napari_xvr.orientation import edge_labels
from napari_xvr.register.checks.trust import verdict_text

XRAY = "chest X-ray (synthetic)"


def _setup(viewer):
    _, drr_widget = viewer.window.add_plugin_dock_widget("napari-xvr", "DRR and pose")
    _, reg = viewer.window.add_plugin_dock_widget("napari-xvr", "Register")
    xray = viewer.layers[XRAY]
    rot, xyz = pose_to_zxy(pose_from_dict(xray.metadata["true_pose"]))
    drr_widget.intrinsics_from.value = xray
    drr_widget.set_pose(rot + (2.0, -1.5, 1.0), xyz + (4.0, -6.0, 3.0))
    reg.scales.value, reg.n_itrs.value = "8,4,2", "20,10,5"
    drr_widget.detector_view.value = False  # the CT as the user left it: the registration view's
    return drr_widget, reg, xray


def test_the_registration_view(sample_viewer, qtbot, artifacts):
    viewer = sample_viewer
    viewer.window.resize(1500, 950)
    drr_widget, reg, xray = _setup(viewer)
    qtbot.waitUntil(lambda: drr_widget.idle, timeout=60_000)
    order = [layer.name for layer in viewer.layers]
    reg.run()
    assert reg.running
    assert not reg.scales.enabled and not reg.outdir.enabled  # locked while it runs
    assert reg.stop_button.enabled and reg.view.enabled
    qtbot.waitUntil(lambda: not reg.running, timeout=240_000)
    assert reg.scales.enabled and reg.outdir.enabled and not reg.stop_button.enabled

    overlay = viewer.layers[reg.overlay_name]
    labels = viewer.layers[f"{XRAY} orientation"]
    shown = {layer.name for layer in viewer.layers if layer.visible}
    assert shown == {XRAY, overlay.name, labels.name}, shown  # the CT slice is hidden
    # one view: one canvas (no grid) and the layers in their order, the new ones on top
    assert not viewer.canvas.grid.enabled
    assert [layer.name for layer in viewer.layers] == [*order, overlay.name, labels.name]
    assert overlay.interpolation2d == "linear"
    # the letters are the core's for the final pose, at the edges they name
    want = edge_labels(pose_from_matrix(reg.result.pose), intrinsics_of(xray))
    got = dict(zip(("left", "right", "top", "bottom"), labels.features["label"], strict=True))
    assert got == want and got["left"] + got["right"] in ("LR", "RL")
    (r0, c0), (r1, c1) = np.asarray(xray.extent.world)[:, -2:]
    left, right, top, bottom = labels.data
    assert left[1] < 0.5 * (c0 + c1) < right[1] and top[0] < 0.5 * (r0 + r1) < bottom[0]
    assert [label for _, label in reg.plot.markers] == ["1/8", "1/4", "1/2"]
    assert reg.mirror is not None and not reg.mirror.mirrored_better
    assert reg.result.checks["mirror"]["mirrored_better"] is False
    verdict = reg.result.verdict  # shown in the status line, coloured unless ok
    predicted = reg.result.checks["uncertainty"]["predicted_mtre_mm"]
    assert reg.status.value.startswith(f"done [{verdict_text(reg.result)}]")
    assert (verdict["status"] == "ok") == (predicted <= 1.0)
    assert ("color" in reg.status.native.styleSheet()) == (verdict["status"] != "ok")
    viewer.screenshot(str(artifacts / "registration_view.png"), canvas_only=False)

    hidden = [layer for layer in viewer.layers if not layer.visible]
    assert viewer.layers[0] in hidden  # the CT
    reg.view.value = False  # everything the view hid comes back
    assert all(layer.visible for layer in hidden)
    # the overlay and the letters are in detector mm: not left as a pink wash over a CT slice
    assert not overlay.visible and not labels.visible and xray.visible
    reg.view.value = True
    assert overlay.visible and labels.visible


def test_a_mirrored_xray_is_warned_about(sample_viewer, qtbot):
    from napari.utils.notifications import notification_manager

    viewer = sample_viewer
    drr_widget, reg, xray = _setup(viewer)
    mirrored = viewer.add_image(
        np.ascontiguousarray(xray.data[:, ::-1]),
        name="mirrored X-ray",
        metadata=dict(xray.metadata),
        scale=xray.scale,
        translate=xray.translate,
    )
    reg.reset_choices()
    reg.xray.value = mirrored
    messages = []
    notification_manager.notification_ready.connect(lambda n: messages.append(str(n.message)))
    qtbot.waitUntil(lambda: drr_widget.idle, timeout=60_000)
    reg.run()
    qtbot.waitUntil(lambda: not reg.running, timeout=240_000)
    assert reg.mirror is not None and reg.mirror.mirrored_better, reg.mirror
    assert reg.status.value.startswith("check the flip")
    assert any("mirrored left-right" in m for m in messages), messages


def test_retry_when_not_ok_is_the_clis_multistart_auto(sample_viewer):
    from napari_xvr.register.workflows.one_xray import AUTO_STARTS

    _, reg, _ = _setup(sample_viewer)
    assert reg.make_job().checks.retry_starts == 0  # the CLI's default: no retry
    reg.auto_retry.value = True
    assert reg.make_job().checks.retry_starts == AUTO_STARTS
