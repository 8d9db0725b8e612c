"""The Register widget end to end in the real viewer: live overlay, plot, Stop, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_xvr.geometry import pose_from_dict, pose_from_zxy, pose_to_zxy
from napari_xvr.napari.api import evaluate_layers, intrinsics_of
from napari_xvr.register import RegistrationOptions

PERTURB_ROT, PERTURB_XYZ = (2.0, -1.5, 1.0), (4.0, -6.0, 3.0)


def _open_widgets(viewer):
    _, drr = viewer.window.add_plugin_dock_widget("napari-xvr", "DRR and pose")
    _, reg = viewer.window.add_plugin_dock_widget("napari-xvr", "Register")
    return drr, reg


def _perturbed_start(viewer, drr_widget):
    xray = viewer.layers["chest X-ray (synthetic)"]
    rot, xyz = pose_to_zxy(pose_from_dict(xray.metadata["true_pose"]))
    drr_widget.intrinsics_from.value = xray
    drr_widget.set_pose(rot + PERTURB_ROT, xyz + PERTURB_XYZ)
    return xray


def _grab(widget, path):
    widget.native.grab().save(str(path))


def test_register_sample_to_submm(sample_viewer, qtbot, tmp_path, artifacts):
    viewer = sample_viewer
    viewer.window.resize(1500, 950)
    drr_widget, reg = _open_widgets(viewer)
    xray = _perturbed_start(viewer, drr_widget)
    assert reg.xray.value is xray and reg.volume.value is viewer.layers[0]
    defaults = RegistrationOptions()  # the CLI's defaults
    assert (reg.scales.value, reg.n_itrs.value) == (defaults.scales, defaults.n_itrs)
    assert reg.equalize.value == defaults.equalize
    assert reg.renderer.value == "fast"
    reg.renderer.value = "trilinear"  # slower on purpose: the screenshots need a run in progress
    reg.scales.value, reg.n_itrs.value = "8,4,2", "30,20,10"  # but no full-resolution stage
    reg.outdir.value = tmp_path / "results"
    qtbot.waitUntil(lambda: drr_widget.idle, timeout=60_000)
    qtbot.wait(300)  # let the docks settle so the view fits the final canvas
    reg.run_button.native.click()
    assert reg.running  # returned at once: the work is in a thread worker
    frames = []

    def grab(_event):  # frames of the live run for the README's GIF
        if len(frames) < 60 and reg.overlay_name in viewer.layers:
            frames.append(viewer.screenshot(canvas_only=True)[::2, ::2, :3])

    reg.worker.yielded.connect(grab)
    qtbot.waitUntil(lambda: len(reg.similarities) >= 4 and reg.overlay_name in viewer.layers, timeout=120_000)
    overlay = viewer.layers[reg.overlay_name]
    assert overlay.data.dtype == np.float32 and overlay.blending == "additive"
    assert tuple(overlay.contrast_limits) == (-1.5, 8.5)  # fixed, not auto
    viewer.screenshot(str(artifacts / "register_midrun.png"), canvas_only=False)
    _grab(reg, artifacts / "register_widget_midrun.png")
    shot = viewer.screenshot(canvas_only=True)[..., :3].astype(int)
    overlay.visible = False
    without = viewer.screenshot(canvas_only=True)[..., :3].astype(int)
    overlay.visible = True
    assert shot.std() > 10, "blank canvas"
    changed = np.abs(shot - without).max(axis=-1) > 30
    assert changed.mean() > 0.05, "the overlay does not show in the canvas"
    # green X-ray under a magenta DRR: both colours contribute
    assert without[..., 1].mean() > 2 * without[..., 0].mean()
    assert shot[..., 0].mean() > without[..., 0].mean()
    qtbot.waitUntil(lambda: not reg.running, timeout=240_000)
    result = reg.result
    assert result is not None and not result.stopped
    errors = evaluate_layers(
        xray.metadata["true_pose"], result.final_pose, xray.metadata["fiducials_mm"], intrinsics_of(xray)
    )
    (artifacts / "register_errors.json").write_text(json.dumps(errors.to_dict(), indent=2))
    assert errors.mtre < 1.0, errors
    # results saved like the CLI's, the pose on the layer and back in the DRR widget
    saved = json.loads((tmp_path / "results" / xray.name / "result.json").read_text())
    np.testing.assert_allclose(saved["final_pose"]["matrix"], result.final_pose, atol=1e-6)
    assert (tmp_path / "results" / xray.name / "trajectory.csv").is_file()
    np.testing.assert_allclose(xray.metadata["pose"]["matrix"], result.final_pose, atol=1e-6)
    np.testing.assert_allclose(drr_widget.pose_matrix(), result.final_pose, atol=1e-3)
    assert viewer.layers[reg.overlay_name].data.shape == xray.data.shape
    x, y = np.array(reg.similarities).T
    last = [row["similarity"] for row in result.trajectory if row["stage"] == 3]
    assert len(x) == result.iterations and result.similarity >= last[0]  # within a scale
    assert reg.run_button.enabled and not reg.stop_button.enabled
    viewer.screenshot(str(artifacts / "register_done.png"), canvas_only=False)
    import imageio.v3 as iio

    assert len(frames) > 5
    frames = [f for f in frames if f.shape == frames[-1].shape]
    rows, cols = np.nonzero(frames[-1].max(axis=-1) > 10)
    frames = [f[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] for f in frames]
    iio.imwrite(
        artifacts / "register_live.gif", np.stack(frames[::2] + [frames[-1]] * 5), duration=150, loop=0
    )
    qtbot.waitUntil(lambda: drr_widget.idle, timeout=60_000)


def _widget_on_samples(viewer):
    """The samples, the X-ray's metadata pose perturbed from the truth, a docked Register widget."""
    from napari_xvr.napari._register_widget import RegisterWidget

    for key in ("chest_ct", "chest_xray"):
        viewer.open_sample("napari-xvr", key)
    xray = viewer.layers["chest X-ray (synthetic)"]
    rot, xyz = pose_to_zxy(pose_from_dict(xray.metadata["true_pose"]))
    xray.metadata["pose"] = {"matrix": pose_from_zxy(rot + PERTURB_ROT, xyz + PERTURB_XYZ).matrix[0].tolist()}
    reg = RegisterWidget(viewer)
    dock = viewer.window.add_dock_widget(reg)
    reg.init.value = "pose in X-ray metadata"
    return xray, reg, dock


@pytest.mark.filterwarnings("error::FutureWarning")  # private napari access through the proxy fails
def test_stop_midway_keeps_best_pose(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    xray, reg, _ = _widget_on_samples(viewer)
    reg.optimizer.value = "adam"  # xvr's optimiser runs long enough to be stopped midway
    assert reg.n_itrs.value == RegistrationOptions(optimizer="adam").n_itrs and reg.patience.enabled
    reg.run()
    qtbot.waitUntil(lambda: len(reg.similarities) >= 8, timeout=120_000)
    reg.stop_button.native.click()
    qtbot.waitUntil(lambda: not reg.running, timeout=60_000)
    result = reg.result
    assert result.stopped and result.iterations < 100
    best = max(row["similarity"] for row in result.trajectory)
    assert result.similarity >= best - 0.02  # the best pose, not the last one
    assert xray.metadata["result"]["stopped_early"] is True
    np.testing.assert_allclose(xray.metadata["pose"]["matrix"], result.final_pose, atol=1e-6)
    assert viewer.layers[reg.overlay_name].data.shape == xray.data.shape
    assert reg.run_button.enabled and not reg.stop_button.enabled and reg._pbar is None
    # still usable: a second run starts and finishes, this one from three starts
    reg.scales.value, reg.n_itrs.value, reg.multistart.value = "8", "5", 2
    reg.run()
    assert reg._pbar.total == 15
    qtbot.waitUntil(lambda: not reg.running, timeout=120_000)
    assert reg.result.iterations <= 15 and not reg.result.stopped
    assert len(reg.result.multistart["similarities"]) == 3
    assert xray.metadata["result"]["multistart"]["chosen"] == reg.result.multistart["chosen"]


def test_worker_error_is_a_notification(make_napari_viewer, qtbot, tmp_path):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    for key in ("chest_ct", "chest_xray"):
        viewer.open_sample("napari-xvr", key)
    _, reg = viewer.window.add_plugin_dock_widget("napari-xvr", "Register")
    messages = []
    notification_manager.notification_ready.connect(lambda n: messages.append(str(n.message)))
    reg.init.value = "previous result"
    reg.init_path.value = tmp_path / "missing_result.json"
    reg.run()  # fails in the worker: no such result
    qtbot.waitUntil(lambda: not reg.running, timeout=60_000)
    assert any("Register" in m and "no result.json" in m for m in messages), messages
    reg.scales.value = "8,x"  # fails on the main thread before any worker
    reg.run()
    assert not reg.running and any("--scales" in m for m in messages)
    assert reg.run_button.enabled


def test_closing_the_dock_mid_run_stops_the_registration(make_napari_viewer, qtbot):
    _, reg, dock = _widget_on_samples(make_napari_viewer())
    viewer = reg.viewer
    reg.optimizer.value, reg.renderer.value = "adam", "trilinear"  # a long run
    reg.run()
    qtbot.waitUntil(lambda: len(reg.similarities) >= 3, timeout=120_000)
    worker, token = reg.worker, reg.stop_token
    viewer.window.remove_dock_widget(dock)
    reg.native.deleteLater()
    qtbot.waitUntil(lambda: token.stopped, timeout=10_000)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=60_000)  # ends after one iteration


def test_an_existing_result_is_refused_unless_replacing_is_ticked(sample_viewer, tmp_path):
    """The CLI's rule in the widget: decided before any work, nothing replaced unless asked."""
    from napari_xvr.errors import XvrInputError

    drr_widget, reg = _open_widgets(sample_viewer)
    xray = _perturbed_start(sample_viewer, drr_widget)
    reg.outdir.value = tmp_path
    earlier = tmp_path / xray.name
    earlier.mkdir()
    (earlier / "result.json").write_text("an earlier run")
    with pytest.raises(XvrInputError, match="already hold.*tick 'replace an existing result'"):
        reg.make_job()
    reg.run()  # refused with a notification: no worker, the earlier result untouched
    assert not reg.running and (earlier / "result.json").read_text() == "an earlier run"
    reg.overwrite.value = True
    assert reg.make_job().target == tmp_path / xray.name
    reg.outdir.line_edit.value = ""  # cleared: nothing is saved (never into the working folder)
    assert reg.make_job().target is None


def test_the_device_is_chosen_in_the_widget(sample_viewer):
    from napari_xvr.device import device_choices

    drr_widget, reg = _open_widgets(sample_viewer)
    _perturbed_start(sample_viewer, drr_widget)
    assert reg.device.value == "auto"  # the CLI's default
    assert list(reg.device.choices) == device_choices()  # only what this machine has
    assert reg.make_job().spec.device == "auto"
    reg.device.value = "cpu"
    assert reg.make_job().spec.device == "cpu"


def test_a_restart_follows_the_previous_results_flip_as_the_cli(make_napari_viewer, qtbot, tmp_path):
    """The widget's restart ignored the previous result's flip; the core's rule (register/
    resolve.py) now decides it for the widget as for `xvr register restart`."""
    import subprocess
    import sys

    viewer = make_napari_viewer()
    xray, reg, _ = _widget_on_samples(viewer)
    ct = viewer.layers[0].metadata["path"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_xvr.cli",
            "register",
            "fixed",
            xray.metadata["path"],
            "-v",
            ct,
            "-o",
            tmp_path,
            "--rot",
            "0,0,0",
            "--xyz",
            "0,850,0",
            "--reverse_x_axis",
            "--init_only",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    previous = next(p for p in tmp_path.iterdir() if (p / "result.json").is_file())
    reg.init.value = "previous result"
    reg.init_path.value = previous
    assert not reg.reverse_x_axis.value  # unticked: follow the result, as the CLI without the flag
    reg.scales.value, reg.n_itrs.value = "8", "2"
    reg.mirror_check.value = False
    reg.run_button.native.click()
    qtbot.waitUntil(lambda: not reg.running and reg.result is not None, timeout=240_000)
    assert reg.result.inputs["reverse_x_axis"] is True
