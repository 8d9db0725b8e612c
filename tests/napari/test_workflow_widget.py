"""The Workflow panel walks a registration through the real widgets: each step's state follows
what the user did, its button brings up the dock that does it, and the panel with one working
dock fits a 1366 x 768 screen."""

from __future__ import annotations

from napari_xvr.workflow import CURRENT, DONE, WARNING


def _states(panel) -> dict[str, str]:
    panel.refresh()
    return {step.key: step.state for step in panel.steps}


def _in_view(native) -> bool:
    """Shown in full, not scrolled away or cut by the window's edge."""
    region = native.visibleRegion().boundingRect()
    return native.isVisible() and region.height() >= native.height() - 1 and region.width() > 0


def _size(viewer) -> tuple[int, int]:
    size = viewer.window._qt_window.size()
    return size.width(), size.height()


def test_the_workflow_follows_a_registration_and_fits_the_screen(sample_viewer, qtbot, tmp_path, artifacts):
    viewer = sample_viewer
    viewer.window.resize(1600, 1000)
    _, panel = viewer.window.add_plugin_dock_widget("napari-xvr", "Workflow")
    assert _states(panel)["load"] == DONE and _states(panel)["initialise"] == CURRENT
    load = panel.rows["load"][0].value
    assert "chest X-ray" in load and "chest_ct" in load

    reg = panel.open_dock("Register")  # the step's button: the dock, tabbed beside the panel
    assert reg is not None and panel.open_dock("Register") is reg  # the same dock, not a second
    reg.init.value = "DICOM header"
    assert _states(panel)["initialise"] == DONE and _states(panel)["register"] == CURRENT

    reg.outdir.value = tmp_path
    reg.scales.value, reg.n_itrs.value = "8,4", "30,20"  # the steps, not the accuracy
    reg.run()
    qtbot.waitUntil(lambda: len(reg.similarities) >= 3, timeout=120_000)
    for size in ((1600, 1000), (1366, 768)):  # mid-run: the plot, Run/Stop and status in view
        viewer.window.resize(*size)
        qtbot.wait(150)
        reg.focus_xray()  # framed again for this canvas (napari keeps the zoom on a resize)
        assert _size(viewer) == size  # the docks did not grow the window
        for part in (reg.plot.native, reg.run_button.native, reg.status.native):
            assert _in_view(part), (size, part)
        viewer.screenshot(str(artifacts / f"workflow_midrun_{size[0]}x{size[1]}.png"), canvas_only=False)
    qtbot.waitUntil(lambda: not reg.running, timeout=180_000)
    states = _states(panel)
    assert states["register"] == DONE
    assert states["check"] in (DONE, WARNING)
    if states["check"] == WARNING:  # says why, in the verdict's words
        assert reg.result.verdict["status"].upper() in panel.rows["check"][0].value
    assert states["save"] == DONE and reg.last_folder.name in panel.rows["save"][0].value
    # the dock a plugin gets sees the viewer through a proxy: the radiological display still
    # mirrors this AP X-ray, stored with the patient's left on its left
    letters = list(viewer.layers[f"{reg.xray_layer.name} orientation"].features["label"])
    assert letters[:2] == ["L", "R"]
    horizontal = viewer.scene.camera.orientation2d[1]
    assert str(getattr(horizontal, "value", horizontal)) == "left"

    panel.native.parent().raise_()  # its tab in front: the steps beside the result
    for size in ((1366, 768), (1600, 1000)):
        viewer.window.resize(*size)
        qtbot.wait(150)
        reg.focus_xray()
        assert _size(viewer) == size
        assert all(_in_view(button.native) for button in panel.buttons.values()), size
        viewer.screenshot(str(artifacts / f"workflow_{size[0]}x{size[1]}.png"), canvas_only=False)


def test_the_step_buttons_bring_up_their_docks(make_napari_viewer):
    viewer = make_napari_viewer()
    _, panel = viewer.window.add_plugin_dock_widget("napari-xvr", "Workflow")
    assert _states(panel)["load"] == CURRENT
    assert "open a volume and an X-ray" in panel.rows["load"][0].value
    _, button = panel.rows["initialise"]
    button.clicked.emit()
    assert "DRR and pose (napari-xvr)" in viewer.window.dock_widgets


def test_the_panel_follows_each_change_as_it_happens(sample_viewer):
    """No refresh call and no timer: the widgets and the layer list say when the facts change."""
    from napari_xvr.workflow import MARKS

    viewer = sample_viewer
    _, panel = viewer.window.add_plugin_dock_widget("napari-xvr", "Workflow")
    load, initialise = panel.rows["load"][0], panel.rows["initialise"][0]
    assert initialise.value.startswith(MARKS[CURRENT])
    reg = panel.open_dock("Register")
    reg.init.value = "DICOM header"
    assert initialise.value.startswith(MARKS[DONE]) and "DICOM header" in initialise.value
    reg.init.value = reg.init.choices[0]
    assert initialise.value.startswith(MARKS[CURRENT])
    xray = next(layer for layer in viewer.layers if layer.metadata.get("napari_xvr") == "xray")
    viewer.layers.remove(xray)
    assert load.value.startswith(MARKS[CURRENT]) and "an X-ray" in load.value
    viewer.layers.append(xray)
    assert load.value.startswith(MARKS[DONE])
