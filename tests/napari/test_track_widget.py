"""The Track widget on a multi-frame DICOM opened in the viewer: live overlay, Stop, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_xvr.evaluate import anatomy_tre
from napari_xvr.geometry import pose_from_dict


@pytest.fixture(scope="module")
def sequence(tmp_path_factory, registration_volume):
    """A 6-frame C-arm sweep of 3 deg (128 px at 3.2 mm), rendered by DiffDRR's Siddon DRR."""
    from napari_xvr.synthetic_motion import make_sequence, sweep

    folder = tmp_path_factory.mktemp("sequence")
    ct, mask = registration_volume
    truth = make_sequence(folder, sweep(frames=6, degrees=3.0), volume=ct, mask=mask, seed=2)
    return folder / "sequence.dcm", json.loads(truth.read_text())


def _tracked(layer) -> dict:
    return layer.metadata.get("track", {}).get("poses", {})


def test_track_a_sequence_stop_and_resume(
    make_napari_viewer, qtbot, sequence, registration_volume, artifacts
):
    path, truth = sequence
    viewer = make_napari_viewer(show=True)
    viewer.open(str(registration_volume[0]), plugin="napari-xvr")
    viewer.open(str(path), plugin="napari-xvr")
    layer = viewer.layers["sequence"]
    assert layer.data.shape == (6, 1, 128, 128)  # the frames: a slider of their own
    _, widget = viewer.window.add_plugin_dock_widget("napari-xvr", "Track a sequence")
    widget.sequence.value = layer
    widget.scales.value = "4,2,1"
    widget.show_frame(layer, 0)
    assert widget.start_frame(layer) == 0
    widget.run_button.native.click()
    assert widget.running  # the work is in a thread worker
    qtbot.waitUntil(lambda: len(_tracked(layer)) >= 2, timeout=240_000)
    widget.stop()  # ends after the current iteration; the frames done are kept
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)
    done = widget.last_done
    assert done is not None and done.stopped and done.next_frame is not None
    kept = dict(_tracked(layer))
    assert 2 <= len(kept) < 6 and set(kept) == {str(i) for i in range(len(kept))}
    # resume from the slider: the first frame not done, tracked from the state before it
    widget.show_frame(layer, len(kept))
    assert widget.start_frame(layer) == len(kept)
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=240_000)
    assert widget.last_done is not None and not widget.last_done.stopped
    poses = _tracked(layer)
    assert sorted(poses, key=int) == [str(i) for i in range(6)]
    fiducials = np.asarray(truth["fiducials_mm"])
    for index, true in enumerate(truth["frames"]):
        error = anatomy_tre(pose_from_dict(true), pose_from_dict(poses[str(index)]), fiducials)
        assert error < 1.0, f"frame {index}: {error:.2f} mm"
    overlay = viewer.layers["sequence tracked DRR"]
    assert overlay.data.shape == (6, 1, 128, 128)
    assert all(overlay.data[i].std() > 0 for i in range(6))  # every frame's DRR, on the slider
    assert widget.start_frame(layer) == 5  # the slider followed the tracking
    # the patient's directions at the frames' edges, as in the Register view (an AP view)
    letters = list(viewer.layers["sequence orientation"].features["label"])
    assert sorted(letters[:2]) == ["L", "R"] and sorted(letters[2:]) == ["I", "S"], letters

    # shown the radiological way (the patient's left on the viewer's right), switchable
    def horizontal() -> str:
        side = viewer.scene.camera.orientation2d[1]
        return str(getattr(side, "value", side)).lower()

    mirrored = letters[0] == "L"  # stored with the patient's left on the frame's left
    assert horizontal() == ("left" if mirrored else "right")
    widget.radiological.value = False
    assert horizontal() == "right"
    widget.radiological.value = True
    # resuming from a tracked frame again gives the same poses (the state is kept per frame)
    before = {k: np.asarray(v["matrix"]) for k, v in poses.items()}
    widget.show_frame(layer, 3)
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=240_000)
    for key in ("3", "4", "5"):
        np.testing.assert_allclose(np.asarray(_tracked(layer)[key]["matrix"]), before[key], atol=1e-3)
    # that run's 3 frames smoothed together (core register/workflows/smooth.py), kept beside the poses
    assert "smoothed: predicted mTRE" in widget.status.value
    smoothed = layer.metadata["track"]["smoothed"]
    assert {"3", "4", "5"} <= set(smoothed)
    for key in ("3", "4", "5"):
        error = anatomy_tre(
            pose_from_dict(truth["frames"][int(key)]), pose_from_dict(smoothed[key]), fiducials
        )
        assert error < 1.0, f"smoothed frame {key}: {error:.2f} mm"
    widget.show_frame(layer, 4)
    # the frames have a slider of their own, named and counted in frames; the CT's slices another
    axis = viewer.dims.ndim - 4
    assert viewer.dims.axis_labels[axis] == "frame" and viewer.dims.nsteps[axis] == 6
    assert viewer.dims.current_step[axis] == 4
    ct_axis = axis + 1
    viewer.dims.set_current_step(ct_axis, viewer.dims.nsteps[ct_axis] - 1)  # the CT's last slice
    assert widget.start_frame(layer) == 4 and viewer.dims.nsteps[ct_axis] < 1000
    shot = viewer.screenshot(str(artifacts / "track_sequence.png"), canvas_only=False)
    canvas = viewer.screenshot(canvas_only=True)[..., :3].astype(int)
    overlay.visible = False
    without = viewer.screenshot(canvas_only=True)[..., :3].astype(int)
    assert shot.std() > 10
    assert canvas[..., 0].mean() > without[..., 0].mean() + 5, "the overlay does not show"


def test_the_sample_sequence_is_ready_to_track(make_napari_viewer):
    """File > Open Sample had no sequence: one is there now, with every frame's true pose."""
    viewer = make_napari_viewer(show=False)
    for key in ("chest_ct", "chest_sequence"):
        viewer.open_sample("napari-xvr", key)
    layer = viewer.layers["chest fluoroscopy (synthetic)"]
    assert layer.data.shape == (20, 1, 128, 128) and np.isfinite(layer.data).all()
    assert len(layer.metadata["true_poses"]) == 20 and layer.metadata["fiducials_mm"]
    assert layer.data[0].std() > 0 and not np.array_equal(layer.data[0], layer.data[5])
    _, widget = viewer.window.add_plugin_dock_widget("napari-xvr", "Track a sequence")
    assert widget.sequence.value is layer
