"""The Register widget with two X-ray layers: a joint (biplane) registration in the viewer."""

from __future__ import annotations

import numpy as np

from napari_xvr.evaluate import anatomy_tre
from napari_xvr.geometry import pose_from_dict
from napari_xvr.napari.api import intrinsics_of
from napari_xvr.orientation import edge_labels

VIEWS = ("view_0", "view_1")


def _canvas_state(viewer) -> dict:
    """What the registration view may change and must give back: grid, order, visibility."""
    grid = viewer.canvas.grid
    return {
        "grid": (grid.enabled, grid.stride, tuple(grid.shape)),
        "order": [layer.name for layer in viewer.layers],
        "visible": {layer.name: layer.visible for layer in viewer.layers},
    }


def _geometry(layer) -> tuple:
    """A layer's data coordinates: what readers, writers and the registration see."""
    return (
        tuple(layer.scale),
        tuple(layer.translate),
        layer.affine.affine_matrix.tolist(),
        np.asarray(layer.extent.world).tolist(),
    )


def _screen_box(viewer, layer) -> np.ndarray:
    """Where `layer` is drawn on the canvas, [[top, left], [bottom, right]] px: its grid cell
    (napari's default spacing 0) and the camera every cell shares."""
    grid, layers = viewer.canvas.grid, viewer.layers
    row, column = grid.position(layers.index(layer), layers)
    assert (row, column) != (-1, -1), f"{layer.name} is in no cell"
    cell = np.asarray(viewer.canvas.viewbox_size(layers), dtype=float)
    camera = viewer.scene.camera
    world = np.asarray(layer.extent.world)[:, -2:]
    middle = np.array([row, column]) * cell + 0.5 * cell
    return middle + (world - np.asarray(camera.center)[-2:]) * camera.zoom


def _assert_side_by_side(viewer) -> list[np.ndarray]:
    """Every view's X-ray, DRR overlay and letters shown, in its own cell, whole and apart."""
    grid, layers = viewer.canvas.grid, viewer.layers
    assert grid.enabled and grid.spacing == 0
    cells = []
    for name in VIEWS:
        own = [layers[name], layers[f"{name} DRR overlay"], layers[f"{name} orientation"]]
        assert all(layer.visible for layer in own), [layer.name for layer in own]
        where = {grid.position(layers.index(layer), layers) for layer in own}
        assert len(where) == 1, (name, where, _canvas_state(viewer))  # overlay, letters: on their X-ray
        cells.append(where.pop())
    assert len(set(cells)) == len(VIEWS), cells
    shown = {layer.name for layer in layers if layer.visible}
    assert shown == {f"{v}{s}" for v in VIEWS for s in ("", " DRR overlay", " orientation")}
    boxes = [_screen_box(viewer, layers[name]) for name in VIEWS]
    height, width = viewer.canvas.size
    for (top, left), (bottom, right) in boxes:  # fitted: whole on the canvas
        assert -1 <= top < bottom <= height + 1 and -1 <= left < right <= width + 1, boxes
    (a0, a1), (b0, b1) = boxes
    assert (a1 <= b0 + 1).any() or (b1 <= a0 + 1).any(), boxes  # apart along rows or columns
    return boxes


def test_register_two_views_jointly(
    make_napari_viewer, qtbot, biplane_cases, registration_volume, tmp_path, artifacts
):
    folder, truth = biplane_cases
    viewer = make_napari_viewer(show=True)
    viewer.open(str(registration_volume[0]), plugin="napari-xvr")
    for name in VIEWS:
        viewer.open(str(folder / "case_000" / f"{name}.dcm"), plugin="napari-xvr")
    _, reg = viewer.window.add_plugin_dock_widget("napari-xvr", "Register")
    viewer.window.resize(1500, 950)
    ap, lateral = viewer.layers["view_0"], viewer.layers["view_1"]
    before, geometry = _canvas_state(viewer), {v: _geometry(viewer.layers[v]) for v in VIEWS}
    reg.xray.value = ap
    assert [layer.name for layer in reg.views.choices] == ["view_1"]  # not the X-ray itself
    reg.views.value = [lateral]
    reg.init.value = "DICOM header"
    reg.scales.value, reg.n_itrs.value = "4,2,1", "30,20,10"
    reg.outdir.value = tmp_path / "results"
    qtbot.wait(300)  # let the docks settle so the view fits the final canvas
    reg.run_button.native.click()
    assert reg.running  # returned at once: the work runs in a thread worker
    live = "view_1 DRR overlay"
    qtbot.waitUntil(
        lambda: live in viewer.layers and viewer.layers[live].data.std() > 0, timeout=240_000
    )  # the second view's overlay updates while it runs
    assert reg.running
    _assert_side_by_side(viewer)  # mid-run: both views, each with its live overlay
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
        # each view's letters are the core's for its own final pose
        want = edge_labels(
            pose, intrinsics_of(layer), reg._job.spec.orientation, reg._job.spec.reverse_x_axis
        )
        letters = viewer.layers[f"{name} orientation"].features["label"]
        assert dict(zip(("left", "right", "top", "bottom"), letters, strict=True)) == want
    assert "joint" in lateral.metadata["result"]["checks"]
    qtbot.wait(100)  # drawn
    boxes = _assert_side_by_side(viewer)
    _assert_drawn_apart(
        viewer.screenshot(str(artifacts / "register_joint_view.png"), canvas_only=True), viewer, boxes
    )
    assert {v: _geometry(viewer.layers[v]) for v in VIEWS} == geometry  # no layer moved

    reg.view.value = False  # the grid, the layer order and the visibility as they were
    after = _canvas_state(viewer)
    assert after["grid"] == before["grid"]
    assert after["order"][: len(before["order"])] == before["order"]  # the overlays: on top
    assert {n: after["visible"][n] for n in before["visible"]} == before["visible"]
    assert {v: _geometry(viewer.layers[v]) for v in VIEWS} == geometry
    for layer in viewer.layers:  # the user looks at the lateral view alone
        layer.visible = layer.name in ("view_1", live, "view_1 orientation")
    viewer.screenshot(str(artifacts / "register_joint_lateral.png"), canvas_only=True)
    _single_view_after_a_joint_one(viewer, reg, qtbot, _canvas_state(viewer))


def _assert_drawn_apart(shot: np.ndarray, viewer, boxes) -> None:
    """The screenshot holds each X-ray (green) with its DRR (magenta) in its box, dark between."""
    factor = np.asarray(shot.shape[:2]) / np.asarray(viewer.canvas.size)
    inside = []
    for box in boxes:
        (top, left), (bottom, right) = np.round(box * factor).astype(int)
        pixels = shot[max(top, 0) + 2 : bottom - 2, max(left, 0) + 2 : right - 2, :3].astype(float)
        red, green, blue = pixels.reshape(-1, 3).mean(axis=0)
        assert green > 40 and red > 15 and blue > 15, (box, red, green, blue)
        inside.append((top, left, bottom, right))
    (t0, l0, b0, r0), (t1, l1, b1, r1) = inside
    gap = (
        shot[max(t0, t1) : min(b0, b1), r0 + 1 : l1 - 1]
        if l1 > r0
        else shot[b0 + 1 : t1 - 1, max(l0, l1) : min(r0, r1)]
    )
    assert gap.size and gap[..., :3].mean() < 10, gap[..., :3].mean()


def _single_view_after_a_joint_one(viewer, reg, qtbot, before: dict) -> None:
    """The registration view on again shows both views; a single-view run of another X-ray
    then is as ever (one canvas, the user's layer order, its X-ray, overlay and letters alone);
    unticking gives back what the user had (`before`)."""
    reg.view.value = True
    _assert_side_by_side(viewer)
    reg.xray.value, reg.views.value = viewer.layers["view_1"], []
    reg.scales.value, reg.n_itrs.value = "4", "5"
    reg.outdir.line_edit.value = ""  # cleared: nothing saved (never into the working folder)
    reg.run_button.native.click()
    qtbot.waitUntil(lambda: not reg.running, timeout=240_000)
    assert reg.result is not None and not reg.result.views, reg.status.value
    state = _canvas_state(viewer)
    assert state["grid"] == before["grid"] and state["order"] == before["order"]
    shown = {name for name, visible in state["visible"].items() if visible}
    assert shown == {"view_1", "view_1 DRR overlay", "view_1 orientation"}, shown
    reg.view.value = False
    assert _canvas_state(viewer) == before


def test_the_joint_control_in_the_register_dock(make_napari_viewer, biplane_cases, artifacts):
    """The 'joint with' list sits in the Inputs group, lists the X-ray layers, and starts empty."""
    folder, _ = biplane_cases
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1500, 950)
    for name in ("view_0", "view_1"):
        viewer.open(str(folder / "case_000" / f"{name}.dcm"), plugin="napari-xvr")
    _, reg = viewer.window.add_plugin_dock_widget("napari-xvr", "Register")
    assert list(reg.views.value) == []
    # the X-ray layers besides the one registered, following its choice
    reg.xray.value = viewer.layers["view_1"]
    assert [layer.name for layer in reg.views.choices] == ["view_0"]
    reg.xray.value = viewer.layers["view_0"]
    assert [layer.name for layer in reg.views.choices] == ["view_1"]
    reg.views.value = [viewer.layers["view_1"]]
    reg.xray.value = viewer.layers["view_1"]  # chosen to register: no longer its own joint view
    assert list(reg.views.value) == [] and [v.name for v in reg.views.choices] == ["view_0"]
    reg.xray.value = viewer.layers["view_0"]
    reg.views.value = [viewer.layers["view_1"]]
    reg.native.grab().save(str(artifacts / "register_dock_joint_with.png"))
