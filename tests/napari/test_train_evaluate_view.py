"""The Train and Evaluate docks as a user sees them: the DRR widget's names and units, choices
instead of free text, CPU-sized defaults without a GPU, a labelled mosaic in its own place, error
vectors with a legend, truth and fiducials from files, options locked while a run goes, and
Run/Stop reachable with four docks on a 1600x1000 screen."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from qtpy.QtWidgets import QApplication, QScrollArea

from napari_xvr.geometry import pose_from_dict, pose_from_zxy, pose_to_dict, pose_to_zxy

pytestmark = pytest.mark.gui


def _extent_2d(layer) -> np.ndarray:
    return np.asarray(layer.extent.world)[:, -2:]


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a[0] < b[1]) and np.all(b[0] < a[1]))


def _idle(qtbot, widget, timeout=240_000) -> None:
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)
    qtbot.wait(300)  # the last queued events and the unlock


def test_train_names_choices_and_defaults(make_napari_viewer):
    import timm

    from napari_xvr.napari._drr_widget import FLIP_LABEL, FLIP_TOOLTIP, POSE_LABELS
    from napari_xvr.napari._train_widget import MODELS, device_choices, on_cpu
    from napari_xvr.train import TrainConfig
    from napari_xvr.train.recipes import cpu_recipe

    viewer = make_napari_viewer()
    _, tr = viewer.window.add_plugin_dock_widget("napari-xvr", "Train")
    # CPU-sized defaults without a GPU; the core's (xvr's) on a GPU
    core = TrainConfig(volpath="", outpath="")
    controls = {
        "height": "det_height",
        "delx": "delx",
        "batch_size": "batch_size",
        "n_total_itrs": "n_total_itrs",
        "n_warmup_itrs": "n_warmup_itrs",
        "n_save_every_itrs": "n_save_every_itrs",
    }
    expected = {k: getattr(cpu_recipe(core) if on_cpu() else core, k) for k in controls}
    assert tr.cpu_preset == on_cpu()
    for key, attr in controls.items():
        assert getattr(tr, attr).value == pytest.approx(expected[key]), key
    assert tr.preset_note.native.isHidden() != on_cpu()
    assert ("No GPU" in tr.preset_note.value) == on_cpu()
    assert (tr.renderer.value == "fast") and (tr.lr.value == pytest.approx(2e-3 if on_cpu() else core.lr))
    assert core.batch_size == 116 and core.height == 256  # the core's defaults are untouched
    for name, edit in tr.ranges.items():  # "primary (deg)" -> "primary range (deg)"
        what, unit = POSE_LABELS[name].rsplit(" ", 1)
        assert edit.label == f"{what} range {unit}"
    labels = [w.label for w in (tr.det_height, tr.det_width, tr.delx, tr.dely)]
    assert labels == ["height (px)", "width (px)", "delx (mm)", "dely (mm)"]
    tr.det_height.value, tr.delx.value = 48, 5.5  # square DRRs and pixels: the pair follows
    assert (tr.det_width.value, tr.dely.value) == (48, 5.5)
    assert not tr.det_width.enabled and not tr.dely.enabled
    # choices, not free text
    assert list(tr.device.choices) == device_choices() and {"auto", "cpu"} <= set(tr.device.choices)
    assert tr.device.value == "auto"
    assert list(tr.model_name.choices) == list(MODELS) and tr.model_name.value == "resnet18"
    assert all(timm.is_model(m) for m in MODELS)  # a local list: nothing is downloaded
    assert tr.reverse_x_axis.label == FLIP_LABEL and tr.reverse_x_axis.tooltip == FLIP_TOOLTIP
    tr.volpath.value, tr.outpath.value = "ct.nii.gz", "out"
    tr.reverse_x_axis.value, tr.model_name.value = True, "resnet34"
    config = tr.config()
    assert config.reverse_x_axis and config.model_name == "resnet34" and config.height == 48


def test_train_locks_options_and_shows_a_labelled_mosaic_apart(sample_viewer, qtbot, tmp_path):
    viewer = sample_viewer
    viewer.window._qt_window.resize(1600, 1000)
    _, tr = viewer.window.add_plugin_dock_widget("napari-xvr", "Train")
    tr.volume.value = viewer.layers["chest_ct_4x4x2"]
    tr.outpath.value = tmp_path / "model"
    tr.batch_size.value, tr.det_height.value, tr.delx.value = 2, 32, 16.0
    tr.n_total_itrs.value, tr.n_warmup_itrs.value, tr.n_grad_accum_itrs.value = 3, 1, 1
    tr.n_save_every_itrs.value, tr.n_drr_every_itrs.value = 3, 1
    tr.device.value = "cpu"
    tr.start_button.native.click()
    assert tr.running
    locked = (
        tr.batch_size,
        tr.device,
        tr.model_name,
        tr.ranges["r1"],
        tr.start_button,
        tr.resume_button,
        tr.outpath,
        tr.volpath,
    )
    assert not [w.name for w in locked if w.enabled] and tr.stop_button.enabled
    _idle(qtbot, tr)
    assert tr.done is not None and tr.done.itr == 3, tr.status.value
    assert all(w.enabled for w in locked) and not tr.stop_button.enabled
    assert not tr.det_width.enabled  # off for its own reason: it stays off
    from napari_xvr.napari._train_display import MOSAIC, MOSAIC_TEXT, ROW_NAMES

    mosaic, text = viewer.layers[MOSAIC], viewer.layers[MOSAIC_TEXT]
    box = _extent_2d(mosaic)
    for layer in viewer.layers:
        if layer.name not in (MOSAIC, MOSAIC_TEXT):
            assert not _overlap(box, _extent_2d(layer)), layer.name  # its own place
    assert list(text.features["row"]) == list(ROW_NAMES)
    (top_row, top_col), (bottom_row, bottom_col) = text.data  # above and below the mosaic
    assert top_row < box[0, 0] and bottom_row > box[1, 0]
    assert box[0, 1] < top_col < box[1, 1] and box[0, 1] < bottom_col < box[1, 1]
    qtbot.wait(500)
    assert tr.body.native.width() <= tr.scroll.viewport().width()  # nothing cut off at the right
    viewer.screenshot("/tmp/train_view.png", canvas_only=False)
    # a failure in the worker (ty beyond sdd) unlocks the options too
    tr.outpath.value = tmp_path / "model2"
    tr.ranges["ty"].value = "900,1100"
    tr.start_button.native.click()
    _idle(qtbot, tr)
    assert tr.status.value.startswith("failed") and "--ty" in tr.status.value
    assert all(w.enabled for w in locked) and not tr.stop_button.enabled


def test_evaluate_vectors_legend_and_files(sample_viewer, qtbot, tmp_path, sample_cache):
    from napari_xvr.napari._evaluate_widget import ERROR_COLOR, PRED_COLOR, TRUE_COLOR, TRUE_SOURCES

    viewer = sample_viewer
    viewer.window._qt_window.resize(1600, 1000)
    xray = viewer.layers["chest X-ray (synthetic)"]
    rot, xyz = pose_to_zxy(pose_from_dict(xray.metadata["true_pose"]))
    xray.metadata["pose"] = pose_to_dict(pose_from_zxy(rot + 3, xyz + np.array([8.0, 0.0, -6.0])))
    fiducials = np.asarray(xray.metadata["fiducials_mm"])
    with (tmp_path / "fiducials.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x", "y", "z"])
        writer.writerows(fiducials.tolist())
    truth = sample_cache / "sample" / "xray" / "truth.json"
    assert "xray_000" in json.loads(truth.read_text())["cases"]
    _, ev = viewer.window.add_plugin_dock_widget("napari-xvr", "Evaluate and animate")
    ev.xray.value = xray
    ev.fiducials_file.value = tmp_path / "fiducials.csv"  # fiducials from a file
    ev.fiducials_file_button.native.click()
    points = viewer.layers["fiducials (fiducials.csv)"]
    assert ev.fiducials.value is points and np.allclose(points.data, fiducials)
    ev.true_source.value = TRUE_SOURCES[1]  # the truth from a file: truth.json, by the X-ray's name
    ev.true_file.value = truth
    ev.evaluate_button.native.click()
    _idle(qtbot, ev, 60_000)
    e = ev.last_errors
    assert e is not None and e.mtre > 1 and e.n_fiducials == len(fiducials), ev.status.value
    from napari_xvr.conventions import METRIC_DEFINITIONS

    for name, definition in METRIC_DEFINITIONS.items():  # the definitions stay
        assert f"{name} " in ev.errors.value and definition in ev.errors.value
    true = viewer.layers[f"{xray.name} fiducials (true)"]
    pred = viewer.layers[f"{xray.name} fiducials (estimated)"]
    vectors = viewer.layers[f"{xray.name} errors (true to estimated)"]
    assert vectors.data.shape == (len(fiducials), 2, 2)
    assert np.allclose(vectors.data[:, 0], true.data)
    assert np.allclose(vectors.data[:, 0] + vectors.data[:, 1], pred.data)
    from napari.utils.colormaps.standardize_color import transform_color

    overlay = {tuple(transform_color(c)[0].round(3)) for c in ("lime", "green", "magenta")}
    for color in (TRUE_COLOR, PRED_COLOR, ERROR_COLOR):
        assert tuple(transform_color(color)[0].round(3)) not in overlay
        assert color in ev.legend.value
    assert np.allclose(true.face_color[0], transform_color(TRUE_COLOR)[0])
    assert np.allclose(pred.face_color[0], transform_color(PRED_COLOR)[0])
    assert np.allclose(vectors.edge_color[0], transform_color(ERROR_COLOR)[0])
    # the same truth as the X-ray's metadata: identical errors
    ev.true_source.value = TRUE_SOURCES[0]
    ev.evaluate_button.native.click()
    _idle(qtbot, ev, 60_000)
    assert ev.last_errors.mtre == pytest.approx(e.mtre, rel=1e-6)
    for layer in list(viewer.layers):  # the X-ray and what was drawn on it
        layer.visible = layer.ndim == 2
    from napari_xvr.napari._layer_helpers import fit_2d

    fit_2d(viewer, xray)
    qtbot.wait(500)
    assert ev.body.native.width() <= ev.scroll.viewport().width()  # nothing cut off at the right
    viewer.screenshot("/tmp/evaluate_view.png", canvas_only=False)
    # a failing run (no trajectory to replay) locks, then unlocks the options
    ev.volume.value = viewer.layers["chest_ct_4x4x2"]
    xray.metadata.pop("trajectory", None)
    ev.replay_button.native.click()
    assert not ev.evaluate_button.enabled and not ev.xray.enabled and not ev.true_file.enabled
    assert ev.stop_button.enabled
    _idle(qtbot, ev, 60_000)
    assert ev.status.value.startswith("failed") and "trajectory" in ev.status.value
    assert ev.evaluate_button.enabled and ev.xray.enabled and ev.true_file.enabled
    assert not ev.stop_button.enabled


def test_docks_scroll_so_run_and_stop_stay_reachable(make_napari_viewer, qtbot):
    """Train and Evaluate scroll: docked together (and beside the DRR and Register docks) on a
    1600x1000 screen the window stays on the screen and Start/Stop/Evaluate can be scrolled to."""
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1600, 1000)
    docks = {}
    for name in ("Train", "Evaluate and animate"):
        _, docks[name] = viewer.window.add_plugin_dock_widget("napari-xvr", name)
    qtbot.wait(300)
    QApplication.processEvents()
    assert window.height() <= 1000 and window.width() <= 1600, window.size()
    for name, buttons in (
        ("Train", ("start_button", "stop_button", "resume_button")),
        ("Evaluate and animate", ("evaluate_button", "replay_button", "stop_button")),
    ):
        widget = docks[name]
        assert isinstance(widget.scroll, QScrollArea), name
        assert widget.scroll.minimumSizeHint().height() < 250, name  # never forces the window taller
        for button in buttons:  # pinned below the options: in view without scrolling
            assert not getattr(widget, button).native.visibleRegion().isEmpty(), (name, button)
        assert widget.scroll.verticalScrollBar().maximum() > 0, name  # the options scroll
        last = widget.body[-1].native
        widget.scroll.ensureWidgetVisible(last)
        QApplication.processEvents()
        assert not last.visibleRegion().isEmpty(), name
    # a long status elides instead of widening the dock
    train = docks["Train"]
    width = train.native.width()
    train.status.value = "x" * 2000
    QApplication.processEvents()
    assert train.native.width() <= width + 1 and train.status.value == "x" * 2000
    # beside the other two docks, ours still ask for little height
    for name in ("DRR and pose", "Register"):
        viewer.window.add_plugin_dock_widget("napari-xvr", name)
    QApplication.processEvents()
    for widget in docks.values():
        assert widget.scroll.minimumSizeHint().height() < 250
