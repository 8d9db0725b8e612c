"""Dock widget 4: errors against a true pose from 3D fiducials, projections, and a replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, PushButton, SpinBox
from napari.qt.threading import create_worker

import napari

from ..errors import XvrInputError
from ..geometry import Intrinsics, pose_from_dict, pose_from_matrix
from ._common import find_widget, follow_layers, info, layer_combo, remember, report_error, while_alive
from ._evaluate_job import Evaluated, Replayed, evaluation, replay
from ._jobs import Failed, LayerSnapshot
from ._layers import KIND
from ._register_job import OVERLAY_CONTRAST

TRUE_SOURCES = ("X-ray metadata 'true_pose'", "result file (result.json)")
PRED_SOURCES = ("X-ray metadata 'pose' (last registration)", "DRR and pose widget",
                "result file (result.json)")


def metrics_text(e) -> str:
    """The errors, each with its definition (xvr's, from the core)."""
    from ..conventions import METRIC_DEFINITIONS as D

    return (f"mTRE {e.mtre:.2f} mm: {D['mTRE']}\n"
            f"mPE {e.mpe:.2f} mm: {D['mPE']}\n"
            f"mRPE {e.mrpe:.2f} mm: {D['mRPE']}\n"
            f"geodesic {e.geodesic_mm:.2f} mm (rotation {e.rotation_error_deg:.2f} deg): "
            f"{D['geodesic']}")


REPLAY_PLANE_MM = 1e5  # the replay's one plane covers any CT slice position (100 m)


class EvaluateWidget(Container):
    """mTRE, mPE and mRPE from fiducials in a 3D Points layer (world mm); their projections are
    drawn on the X-ray; "Replay" renders the optimisation as a time axis of the overlay."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self.viewer = viewer
        self.xray = layer_combo(viewer, "xray", "X-ray")
        self.fiducials = layer_combo(viewer, "points", "fiducials (3D points)")
        self.true_source = ComboBox(label="true pose", choices=TRUE_SOURCES, value=TRUE_SOURCES[0])
        self.true_file = FileEdit(label="true result", mode="r", value="")
        self.pred_source = ComboBox(label="estimated pose", choices=PRED_SOURCES, value=PRED_SOURCES[0])
        self.pred_file = FileEdit(label="estimated result", mode="r", value="")
        self.orientation_choice = ComboBox(label="orientation", choices=["AP", "PA"], value="AP")
        self.fiducials_button = PushButton(text="Fiducials from X-ray metadata")
        self.evaluate_button = PushButton(text="Evaluate")
        self.errors = Label(value="")
        self.volume = layer_combo(viewer, "volume", "volume (replay)")
        self.labels_layer = layer_combo(viewer, "labels", "labels (replay)", optional=True)
        self.label_ids = LineEdit(label="render labels", value="")
        self.n_frames = SpinBox(label="frames", value=30, min=2, max=500)
        self.replay_button = PushButton(text="Replay optimisation")
        self.status = Label(value="")
        self.extend([self.xray, self.fiducials, self.fiducials_button, self.true_source,
                     self.true_file, self.pred_source, self.pred_file, self.orientation_choice,
                     self.evaluate_button, self.errors, self.volume, self.labels_layer, self.label_ids,
                     self.n_frames, self.replay_button, self.status])
        self.evaluate_button.changed.connect(self.evaluate)
        self.replay_button.changed.connect(self.replay)
        self.fiducials_button.changed.connect(self.fiducials_from_metadata)
        self.worker = None
        self.last_errors = None
        follow_layers(self, viewer)
        remember(self, "evaluate")

    def _pose(self, source: str, file) -> object:
        xray = self.xray.value
        if source.startswith("X-ray metadata"):
            key = "true_pose" if "true_pose" in source else "pose"
            if xray is None or not xray.metadata.get(key):
                raise XvrInputError(f"the X-ray layer has no {key!r} in its metadata")
            return pose_from_dict(xray.metadata[key])
        if source == "DRR and pose widget":
            widget = find_widget("drr", self.viewer)
            if widget is None:
                raise XvrInputError("open the 'DRR and pose' widget first")
            return pose_from_matrix(widget.pose_matrix())
        from ..register.result import read_result, result_pose

        if not str(file) or str(file) == ".":
            raise XvrInputError("choose a result.json (or its folder)")
        return result_pose(read_result(Path(file)))

    def fiducials_from_metadata(self) -> None:
        """Add the X-ray's ``fiducials_mm`` (e.g. the sample data's) as a 3D Points layer."""
        xray = self.xray.value
        if xray is None or not xray.metadata.get("fiducials_mm"):
            report_error(XvrInputError("the X-ray layer has no 'fiducials_mm' in its metadata"),
                         "Fiducials")
            return
        self.viewer.add_points(np.asarray(xray.metadata["fiducials_mm"]), name="fiducials",
                               size=8, face_color="cyan", metadata={KIND: "fiducials"})
        self.fiducials.value = self.viewer.layers["fiducials"]

    def evaluate(self) -> None:
        try:
            xray, points = self.xray.value, self.fiducials.value
            if xray is None or points is None:
                raise XvrInputError("choose an X-ray layer and a 3D Points layer of fiducials (mm)")
            true = self._pose(self.true_source.value, self.true_file.value)
            pred = self._pose(self.pred_source.value, self.pred_file.value)
            intr = Intrinsics(**xray.metadata["intrinsics"])
            fiducials = np.asarray(points.data, dtype=np.float64)
        except Exception as err:
            report_error(err, "Evaluate")
            return
        self._start(evaluation, true, pred, fiducials, intr, self.orientation_choice.value)

    def _start(self, func, *args) -> None:
        if self.worker is not None:
            return
        self.worker = create_worker(func, *args, _start_thread=False)
        self.worker.yielded.connect(while_alive(self._on_event))
        self.worker.finished.connect(while_alive(self._on_finished))
        self.evaluate_button.enabled = self.replay_button.enabled = False
        self.worker.start()

    def _on_finished(self) -> None:
        self.worker = None
        self.evaluate_button.enabled = self.replay_button.enabled = True

    def _xray_coords(self, rows_cols_mm: np.ndarray) -> np.ndarray:
        xray = self.xray.value
        return rows_cols_mm + np.asarray(xray.translate[-2:]) + 0.0

    def _on_event(self, event) -> None:
        if isinstance(event, Failed):
            report_error(XvrInputError(event.message), "Evaluate")
            self.status.value = f"failed: {event.message}"
        elif isinstance(event, Evaluated):
            e = event.errors
            self.last_errors = e
            self.errors.value = metrics_text(e)
            name = self.xray.value.name
            for label, data, color in (("true", event.true_mm, "lime"),
                                       ("estimated", event.pred_mm, "magenta")):
                layer_name = f"{name} fiducials ({label})"
                coords = self._xray_coords(data)
                if layer_name in self.viewer.layers:
                    self.viewer.layers[layer_name].data = coords
                else:
                    self.viewer.add_points(coords, name=layer_name, size=6, face_color=color,
                                           border_color=color, metadata={KIND: "projections"})
            info(f"Evaluate: mTRE {e.mtre:.2f} mm, mPE {e.mpe:.2f} mm, mRPE {e.mrpe:.2f} mm")
        elif isinstance(event, Replayed):
            self._show_replay(event)

    # ---------------------------------------------------------------- replay
    def replay(self) -> None:
        try:
            xray, volume = self.xray.value, self.volume.value
            if xray is None or volume is None:
                raise XvrInputError("choose the X-ray (with a registration) and the volume")
            trajectory = xray.metadata.get("trajectory") or []
            intr = Intrinsics(**xray.metadata["intrinsics"])
            args = (LayerSnapshot.of(volume), LayerSnapshot.of(self.labels_layer.value),
                    self.label_ids.value, self.orientation_choice.value, intr, list(trajectory),
                    self.n_frames.value)
        except Exception as err:
            report_error(err, "Replay")
            return
        self._start(replay, *args)

    def _show_replay(self, event: Replayed) -> None:
        """The frames as (frame, plane, row, col): a time axis of their own, and one plane that
        spans every CT slice, so scrubbing the frames shows the replay wherever the CT slider is
        (a 3D (frame, row, col) layer would share the CT's first axis)."""
        xray = self.xray.value
        intr = xray.metadata["intrinsics"]
        frames = event.frames[:, None]
        s_row = intr["dely"] * intr["height"] / frames.shape[2]
        s_col = intr["delx"] * intr["width"] / frames.shape[3]
        scale = (1.0, REPLAY_PLANE_MM, s_row, s_col)
        translate = (0.0, 0.0, 0.5 * (s_row - intr["dely"]), 0.5 * (s_col - intr["delx"]))
        name = f"{xray.name} replay"
        meta = {KIND: "replay", "iterations": list(event.itrs)}
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = frames
            layer.metadata.update(meta)
        else:
            self.viewer.add_image(frames, name=name, scale=scale, translate=translate,
                                  colormap="magenta", blending="additive", opacity=0.6,
                                  contrast_limits=OVERLAY_CONTRAST, metadata=meta)
            labels = list(self.viewer.dims.axis_labels)
            labels[-4] = "replay frame"
            self.viewer.dims.axis_labels = labels
        self.viewer.dims.set_current_step(self.viewer.dims.ndim - 4, frames.shape[0] - 1)
        self.status.value = f"replay: {event.done}/{event.total} frames rendered"
