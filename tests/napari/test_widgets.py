"""DRR and pose (live DRR, C-arm in 3D), Evaluate and animate, and Train, in the real viewer."""

from __future__ import annotations

import csv

import numpy as np
import torch

from napari_xvr.geometry import pose_from_dict, pose_to_zxy


def _settle(qtbot, widget, attr="worker", timeout=120_000):
    qtbot.waitUntil(lambda: getattr(widget, attr) is None, timeout=timeout)


def test_drr_follows_pose_and_draws_carm(sample_viewer, qtbot, artifacts):
    viewer = sample_viewer
    viewer.window.resize(1500, 950)
    _, drr = viewer.window.add_plugin_dock_widget("napari-xvr", "DRR and pose")
    xray = viewer.layers["chest X-ray (synthetic)"]
    drr.intrinsics_from.value = xray
    rot, xyz = pose_to_zxy(pose_from_dict(xray.metadata["true_pose"]))
    drr.set_pose(rot, xyz)
    qtbot.waitUntil(lambda: drr.drr_name in viewer.layers, timeout=120_000)
    _settle(qtbot, drr)
    layer = viewer.layers[drr.drr_name]
    assert layer.data.dtype == np.float32 and layer.data.shape == xray.data.shape
    corr = np.corrcoef(layer.data.ravel(), xray.data.ravel())[0, 1]
    assert corr > 0.9  # rendered at the true pose, it matches the synthetic X-ray
    # many quick slider moves: never blocks, renders the last pose
    serial = drr.shown_serial
    for step in range(8):
        drr.controls["r1"].value = rot[0] + step
    assert drr.worker is not None or drr._timer.isActive()
    qtbot.waitUntil(
        lambda: (
            drr.shown_serial > serial
            and drr.worker is None
            and not drr._timer.isActive()
            and not drr._pending
        ),
        timeout=120_000,
    )
    np.testing.assert_allclose(layer.metadata["pose"]["rotation_deg_zxy"][0], rot[0] + 7, atol=0.5)
    # the C-arm in 3D
    for name in ("chest_mask_4x4x2", drr.drr_name, xray.name):
        viewer.layers[name].visible = False
    drr.show_carm.value = True
    qtbot.waitUntil(lambda: "C-arm" in viewer.layers, timeout=120_000)
    _settle(qtbot, drr)
    assert viewer.dims.ndisplay == 3
    carm = viewer.layers["C-arm"]
    source = viewer.layers["X-ray source"].data[0]
    detector = carm.data[0][:4]
    sdd = np.linalg.norm(source - detector.mean(axis=0))
    np.testing.assert_allclose(sdd, 1020.0, rtol=1e-3)  # source to detector centre is the sdd
    viewer.reset_view()
    viewer.scene.camera.angles = (0, -35, 130)
    qtbot.wait(300)
    shot = viewer.screenshot(str(artifacts / "carm_3d.png"), canvas_only=True)
    yellow = (shot[..., 0] > 180) & (shot[..., 1] > 180) & (shot[..., 2] < 100)
    assert shot[..., :3].std() > 5 and yellow.sum() > 30, "C-arm not drawn"
    viewer.screenshot(str(artifacts / "carm_3d_window.png"), canvas_only=False)
    # the C-arm moves with the pose
    before = viewer.layers["X-ray source"].data[0].copy()
    drr.controls["r1"].value = rot[0] + 40
    qtbot.waitUntil(lambda: not np.allclose(viewer.layers["X-ray source"].data[0], before), timeout=120_000)
    _settle(qtbot, drr)


def _differ(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two screenshots on their common size (a dock may resize)."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    return float(np.abs(a[:h, :w] - b[:h, :w]).mean())


def test_evaluate_and_replay(sample_viewer, qtbot, artifacts):
    from napari_xvr.geometry import pose_from_zxy
    from napari_xvr.napari.api import register_layers
    from napari_xvr.register import RegistrationOptions

    viewer = sample_viewer
    xray = viewer.layers["chest X-ray (synthetic)"]
    rot, xyz = pose_to_zxy(pose_from_dict(xray.metadata["true_pose"]))
    # a quick (coarse) registration without a viewer: the Python API on layers
    result = register_layers(
        xray,
        viewer.layers["chest_ct_4x4x2"],
        pose_from_zxy(rot + 2, xyz + 5),
        options=RegistrationOptions(scales="8", n_itrs="30"),
    )
    # the CLI's pipeline: a verdict and the mirror check, as `xvr register` gives
    assert result.verdict["status"] in ("ok", "suspect", "failed") and "mirror" in result.checks
    xray.metadata.update(pose={"matrix": result.final_pose.tolist()}, trajectory=result.trajectory)
    _, ev = viewer.window.add_plugin_dock_widget("napari-xvr", "Evaluate and animate")
    ev.xray.value = xray
    ev.fiducials_button.native.click()
    assert ev.fiducials.value is viewer.layers["fiducials"]
    ev.evaluate_button.native.click()
    qtbot.waitUntil(lambda: ev.last_errors is not None, timeout=60_000)
    _settle(qtbot, ev)
    e = ev.last_errors
    assert 0 < e.mtre < 50 and e.mpe > 0 and e.mrpe > 0
    from napari_xvr.conventions import METRIC_DEFINITIONS

    for name, definition in METRIC_DEFINITIONS.items():  # each number with its definition
        assert f"{name} " in ev.errors.value and definition in ev.errors.value
    true_pts = viewer.layers[f"{xray.name} fiducials (true)"].data
    assert true_pts.shape == (len(xray.metadata["fiducials_mm"]), 2)
    lo, hi = np.asarray(xray.extent.world)
    assert ((true_pts > lo) & (true_pts < hi)).all(axis=1).mean() > 0.8  # they land on the X-ray
    # identical poses give zero error
    ev.pred_source.value = "result file (result.json)"
    ev.true_source.value = "X-ray metadata 'true_pose'"
    # the replay: a time axis of DRRs along the trajectory
    frames = min(6, len(result.trajectory))  # LM may converge in fewer steps than 6
    assert frames >= 3
    ev.n_frames.value = 6
    ev.replay_button.native.click()
    qtbot.waitUntil(lambda: f"{xray.name} replay" in viewer.layers, timeout=120_000)
    _settle(qtbot, ev)
    replay = viewer.layers[f"{xray.name} replay"]
    assert replay.data.ndim == 4 and replay.data.shape[:2] == (frames, 1)
    assert replay.data.dtype == np.float32 and not np.allclose(replay.data[0], replay.data[-1])
    # its own time axis: every frame shows, wherever the CT's slice slider is
    time_axis = viewer.dims.ndim - 4
    assert viewer.dims.axis_labels[time_axis] == "replay frame"
    ct_axis = time_axis + 1
    lo, hi, _ = viewer.dims.range[ct_axis]
    shots = {}
    for frame in (0, frames // 2, frames - 1):
        for z in (lo, hi):
            viewer.dims.set_current_step(time_axis, frame)
            viewer.dims.set_point(ct_axis, z)
            qtbot.wait(50)
            replay.visible = True
            shown = viewer.screenshot(canvas_only=True)[..., :3].astype(float)
            replay.visible = False
            hidden = viewer.screenshot(canvas_only=True)[..., :3].astype(float)
            replay.visible = True
            assert _differ(shown, hidden) > 1.0, (frame, z)  # the replay is on screen
            shots[frame, z] = shown
    assert _differ(shots[0, lo], shots[frames - 1, lo]) > 0.1  # and it moves with the slider


def test_train_a_few_iterations_then_resume(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-xvr", "chest_ct")
    _, tr = viewer.window.add_plugin_dock_widget("napari-xvr", "Train")
    assert tr.volume.value is viewer.layers[0]
    tr.outpath.value = tmp_path / "model"
    tr.batch_size.value = 2
    tr.det_height.value = 32
    tr.delx.value = 12.0
    tr.n_total_itrs.value = 4
    tr.n_warmup_itrs.value = 1
    tr.n_grad_accum_itrs.value = 1
    tr.n_save_every_itrs.value = 2
    tr.n_drr_every_itrs.value = 1
    tr.device.value = "cpu"
    tr.start_button.native.click()
    qtbot.waitUntil(lambda: tr.worker is None, timeout=240_000)
    assert tr.done is not None and tr.done.itr == 4 and not tr.done.stopped, tr.status.value
    assert len(tr.losses) == 4 and np.isfinite(np.array(tr.losses)).all()
    mosaic = viewer.layers["training DRRs (top) / predicted (bottom)"]
    assert mosaic.data.dtype == np.float32 and mosaic.data.shape[0] == 64
    assert tr.checkpoints and all(p.is_file() for p in tr.checkpoints)
    first_itr = tr.done.itr
    # resume continues from the last checkpoint with the edited total: a longer run
    tr.n_total_itrs.value = 6
    tr.resume_button.native.click()
    qtbot.waitUntil(lambda: tr.worker is None, timeout=240_000)
    assert tr.done is not None and not tr.done.stopped, tr.status.value
    assert tr.done.itr == 6 > first_itr, tr.status.value  # it ran up to the new total
    assert [itr for itr, _ in tr.losses] == [4, 5]  # only the new iterations, from the checkpoint on
    with (tmp_path / "model" / "losses.csv").open(newline="") as handle:
        logged = [int(row["itr"]) for row in csv.DictReader(handle)]
    assert logged == list(range(6))  # the first run's rows kept, the resumed rows appended
    last = torch.load(tr.done.path, map_location="cpu", weights_only=False)
    assert last["itr"] == 6 and last["config"]["n_total_itrs"] == 6


def test_register_from_a_model_checkpoint(sample_viewer, qtbot, tmp_path):
    """The "model checkpoint" initialisation runs a (tiny, just trained) regressor in the worker."""
    from napari_xvr.train import TrainConfig, run_training, train

    ct = sample_viewer.layers["chest_ct_4x4x2"]
    done = run_training(
        train(
            TrainConfig(
                volpath=ct.metadata["path"],
                outpath=str(tmp_path / "m"),
                batch_size=2,
                height=32,
                delx=12.0,
                n_total_itrs=1,
                n_warmup_itrs=1,
                n_grad_accum_itrs=1,
                n_save_every_itrs=1,
                num_workers=0,
                device="cpu",
            )
        )
    )
    _, reg = sample_viewer.window.add_plugin_dock_widget("napari-xvr", "Register")
    reg.init.value = "model checkpoint"
    reg.init_path.value = done.path
    reg.scales.value, reg.n_itrs.value = "16", "2"
    reg.run()
    qtbot.waitUntil(lambda: not reg.running, timeout=120_000)
    assert reg.result is not None, reg.status.value
    assert reg.result.to_json()["initialization"]["type"] == "model"
