"""The Register widget with two X-ray layers: a joint (biplane) registration in the viewer."""

from __future__ import annotations

import numpy as np

from napari_xvr.evaluate import anatomy_tre
from napari_xvr.geometry import pose_from_dict


def test_register_two_views_jointly(make_napari_viewer, qtbot, biplane_cases, registration_volume,
                                    tmp_path, artifacts):
    folder, truth = biplane_cases
    viewer = make_napari_viewer(show=True)
    viewer.open(str(registration_volume[0]), plugin="napari-xvr")
    for name in ("view_0", "view_1"):
        viewer.open(str(folder / "case_000" / f"{name}.dcm"), plugin="napari-xvr")
    _, reg = viewer.window.add_plugin_dock_widget("napari-xvr", "Register")
    ap, lateral = viewer.layers["view_0"], viewer.layers["view_1"]
    assert {layer.name for layer in reg.views.choices} >= {"view_0", "view_1"}
    reg.xray.value = ap
    reg.views.value = [lateral]
    reg.init.value = "DICOM header"
    reg.scales.value, reg.n_itrs.value = "4,2,1", "30,20,10"
    reg.outdir.value = tmp_path / "results"
    reg.run_button.native.click()
    assert reg.running  # returned at once: the work runs in a thread worker
    live = "view_1 DRR overlay"
    qtbot.waitUntil(lambda: live in viewer.layers and viewer.layers[live].data.std() > 0,
                    timeout=240_000)  # the second view's overlay updates while it runs
    qtbot.waitUntil(lambda: not reg.running, timeout=300_000)
    result = reg.result
    assert result is not None and len(result.views) == 2, reg.status.value
    assert (tmp_path / "results" / "view_0_joint2" / "views" / "1_view_1" / "result.json").is_file()
    fiducials = np.asarray(truth["fiducials_mm"])
    views = truth["cases"]["case_000"]["views"]
    for layer, name in ((ap, "view_0"), (lateral, "view_1")):
        pose = pose_from_dict(layer.metadata["pose"])  # each layer holds its own view's pose
        assert anatomy_tre(pose_from_dict(views[name]["true_pose"]), pose, fiducials) < 0.5
        overlay = viewer.layers[f"{name} DRR overlay"]
        assert overlay.data.shape == (128, 128) and overlay.data.std() > 0
    assert "joint" in lateral.metadata["result"]["checks"]
    lateral.visible, ap.visible = True, False
    viewer.layers["view_0 DRR overlay"].visible = False
    viewer.layers["view_0 orientation"].visible = False
    viewer.layers[live].visible = True
    viewer.screenshot(str(artifacts / "register_joint_lateral.png"), canvas_only=True)


def test_the_joint_control_in_the_register_dock(make_napari_viewer, biplane_cases, artifacts):
    """The 'joint with' list sits in the Inputs group, lists the X-ray layers, and starts empty."""
    folder, _ = biplane_cases
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1500, 950)
    for name in ("view_0", "view_1"):
        viewer.open(str(folder / "case_000" / f"{name}.dcm"), plugin="napari-xvr")
    _, reg = viewer.window.add_plugin_dock_widget("napari-xvr", "Register")
    assert list(reg.views.value) == []
    assert [layer.name for layer in reg.views.choices] == ["view_0", "view_1"]
    reg.views.value = [viewer.layers["view_1"]]
    reg.native.grab().save(str(artifacts / "register_dock_joint_with.png"))
