"""Dock widget 4: errors against a true pose from 3D fiducials, projections, and a replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, LineEdit, PushButton, SpinBox
from napari.qt.threading import create_worker

import napari

from ..errors import XvrInputError
from ..geometry import Intrinsics, grid_placement, pose_from_dict, pose_from_matrix
from ._dock import StatusLine, group, lock_options, scrolled, wrapped_label
from ._evaluate_job import Evaluated, Replayed, evaluation, replay
from ._jobs import Failed, LayerSnapshot
from ._layer_helpers import find_widget, follow_layers, layer_combo, orientation_combo, remember
from ._layers import KIND, SPANNING_PLANE_MM, as_frame_axis
from ._register_job import OVERLAY_CONTRAST
from ._tooltips import explain
from ._workers import info, report_error, while_alive

TRUE_SOURCES = ("X-ray metadata 'true_pose'", "pose file")
PRED_SOURCES = (
    "X-ray metadata 'pose' (last registration)",
    "DRR and pose widget",
    "result file (result.json)",
)
#: apart from the registration overlay's green X-ray and magenta DRR
TRUE_COLOR, PRED_COLOR, ERROR_COLOR = "cyan", "yellow", "orange"
FIDUCIAL_COLOR = "lime"  # the 3D points: not the colour of their true projections
LEGEND = (
    f'<span style="color:{TRUE_COLOR}">&#9679;</span> true projection &nbsp; '
    f'<span style="color:{PRED_COLOR}">&#9679;</span> estimated projection<br>'
    f'<span style="color:{ERROR_COLOR}">&#10230;</span> error, from the true projection to '
    "the estimated one"
)


def metrics_text(e) -> str:
    """The errors, each with its definition (xvr's, from the core)."""
    from ..conventions import METRIC_DEFINITIONS as D

    return (
        f"mTRE {e.mtre:.2f} mm: {D['mTRE']}\n"
        f"mPE {e.mpe:.2f} mm: {D['mPE']}\n"
        f"mRPE {e.mrpe:.2f} mm: {D['mRPE']}\n"
        f"geodesic {e.geodesic_mm:.2f} mm (rotation {e.rotation_error_deg:.2f} deg): "
        f"{D['geodesic']}"
    )


def _file(value) -> Path | None:
    text = str(value or "")
    return None if text in ("", ".") else Path(text)


class EvaluateWidget(Container):
    """mTRE, mPE and mRPE from fiducials in a 3D Points layer (world mm) or a file; their
    projections under both poses and the error between them are drawn on the X-ray; "Replay"
    renders the optimisation as a time axis of the overlay."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=False)
        self.viewer = viewer
        self.xray = layer_combo(viewer, "xray", "X-ray")
        self.fiducials = layer_combo(viewer, "points", "fiducials (3D points)")
        self.fiducials_file = FileEdit(
            label="fiducials file",
            mode="r",
            value="",
            filter="*.csv *.json",
            tooltip="3D points in world mm: a CSV with x,y,z columns, a JSON list of [x, y, z] or "
            "a truth.json with fiducials_mm (as `xvr evaluate -f` reads them)",
        )
        self.fiducials_file_button = PushButton(text="Load fiducials file")
        self.fiducials_button = PushButton(text="Fiducials from X-ray metadata")
        self.true_source = ComboBox(
            label="true pose",
            choices=TRUE_SOURCES,
            value=TRUE_SOURCES[0],
            tooltip="the X-ray's metadata (e.g. the sample's), or a file: result.json, pose JSON, "
            "truth.json, xvr .pth or DICOM",
        )
        self.true_file = FileEdit(
            label="true pose file",
            mode="r",
            value="",
            tooltip="as `xvr evaluate --true`: a result folder/result.json or xvr .pth, a JSON 4x4 "
            "matrix, a truth.json of synthetic cases (matched by the X-ray's file name), or a "
            "DICOM (its header's pose)",
        )
        self.pred_source = ComboBox(label="estimated pose", choices=PRED_SOURCES, value=PRED_SOURCES[0])
        self.pred_file = FileEdit(
            label="estimated result",
            mode="r",
            value="",
            tooltip="a result folder, its result.json, or an xvr .pth",
        )
        self.orientation_choice = orientation_combo()
        self.evaluate_button = PushButton(text="Evaluate")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.errors = wrapped_label()
        self.legend = wrapped_label(LEGEND)
        self.volume = layer_combo(viewer, "volume", "volume (replay)")
        self.labels_layer = layer_combo(viewer, "labels", "labels (replay)", optional=True)
        self.label_ids = LineEdit(label="render labels", value="")
        self.n_frames = SpinBox(label="frames", value=30, min=2, max=500)
        self.replay_button = PushButton(text="Replay")
        self.status = StatusLine("")
        self.body = Container(
            labels=False,
            widgets=[
                group(
                    "Fiducials",
                    self.xray,
                    self.fiducials,
                    self.fiducials_button,
                    self.fiducials_file,
                    self.fiducials_file_button,
                ),
                group(
                    "Poses",
                    self.true_source,
                    self.true_file,
                    self.pred_source,
                    self.pred_file,
                    self.orientation_choice,
                ),
                self.legend,
                self.errors,
                group("Replay", self.volume, self.labels_layer, self.label_ids, self.n_frames),
            ],
        )
        buttons = Container(
            widgets=[self.evaluate_button, self.replay_button, self.stop_button],
            layout="horizontal",
            labels=False,
        )
        self.scroll = scrolled(self, self.body, pinned=(buttons, self.status))
        self.evaluate_button.changed.connect(self.evaluate)
        self.replay_button.changed.connect(self.replay)
        self.stop_button.changed.connect(self.stop)
        self.fiducials_button.changed.connect(self.fiducials_from_metadata)
        self.fiducials_file_button.changed.connect(self.fiducials_from_file)
        self.worker = None
        self.last_errors = None
        follow_layers(self, viewer)
        remember(self, "evaluate")
        explain(self)  # every control says what it does

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
        path = _file(file)
        if source == TRUE_SOURCES[1]:
            from ..evaluate import read_true_pose

            if path is None:
                raise XvrInputError(
                    "choose the true pose file (result.json, pose JSON, truth.json, xvr .pth or DICOM)"
                )
            return read_true_pose(path, self._xray_stem(), self.orientation_choice.value)
        from ..io.result import read_result, result_pose

        if path is None:
            raise XvrInputError("choose a result.json (or its folder)")
        return result_pose(read_result(path))

    def _xray_stem(self) -> str | None:
        """The X-ray's file name without suffix: its case in a truth.json (as the CLI matches)."""
        xray = self.xray.value
        if xray is None:
            return None
        path = xray.metadata.get("path")
        return Path(path).name.split(".", 1)[0] if path else xray.name

    def _add_fiducials(self, points: np.ndarray, name: str) -> None:
        if name in self.viewer.layers:
            self.viewer.layers[name].data = points
        else:
            self.viewer.add_points(
                points, name=name, size=8, face_color=FIDUCIAL_COLOR, metadata={KIND: "fiducials"}
            )
        self.fiducials.value = self.viewer.layers[name]

    def fiducials_from_metadata(self) -> None:
        """Add the X-ray's ``fiducials_mm`` (e.g. the sample data's) as a 3D Points layer."""
        xray = self.xray.value
        if xray is None or not xray.metadata.get("fiducials_mm"):
            report_error(XvrInputError("the X-ray layer has no 'fiducials_mm' in its metadata"), "Fiducials")
            return
        self._add_fiducials(np.asarray(xray.metadata["fiducials_mm"]), "fiducials")

    def fiducials_from_file(self) -> None:
        """Add the fiducials of a CSV/JSON file (the core's reader, as ``xvr evaluate -f``)."""
        from ..evaluate import read_fiducials

        try:
            path = _file(self.fiducials_file.value)
            if path is None:
                raise XvrInputError("choose a fiducials file (CSV with x,y,z columns or JSON)")
            points = read_fiducials(path)
        except Exception as err:
            report_error(err, "Fiducials")
            self.status.value = f"fiducials not loaded: {err}"
            return
        self._add_fiducials(points, f"fiducials ({path.name})")
        self.status.value = f"{len(points)} fiducials from {path.name}"

    def evaluate(self) -> None:
        try:
            xray, points = self.xray.value, self.fiducials.value
            if xray is None or points is None:
                raise XvrInputError(
                    "choose an X-ray layer and a 3D Points layer of fiducials (mm), or load them from a file"
                )
            true = self._pose(self.true_source.value, self.true_file.value)
            pred = self._pose(self.pred_source.value, self.pred_file.value)
            intr = Intrinsics(**xray.metadata["intrinsics"])
            fiducials = np.asarray(points.data, dtype=np.float64)
        except Exception as err:
            report_error(err, "Evaluate")
            self.status.value = f"not evaluated: {err}"
            return
        self._start(evaluation, true, pred, fiducials, intr, self.orientation_choice.value)

    def _start(self, func, *args) -> None:
        if self.worker is not None:
            return
        self.worker = create_worker(func, *args, _start_thread=False)
        self.worker.yielded.connect(while_alive(self._on_event))
        self.worker.finished.connect(while_alive(self._on_finished))
        self._lock(True)
        self.status.value = "running"
        self.worker.start()

    def stop(self) -> None:
        """End the run at its next step (a replay keeps the frames made so far)."""
        if self.worker is not None:
            self.worker.quit()
            self.status.value = "stopping"

    def _on_finished(self) -> None:
        self.worker = None
        self._lock(False)

    def _lock(self, running: bool) -> None:
        """Options off while a run goes (Stop on), back as they were after."""
        lock_options(self, running, keep=(self.stop_button,))
        self.stop_button.enabled = running

    def _xray_coords(self, rows_cols_mm: np.ndarray) -> np.ndarray:
        xray = self.xray.value
        return rows_cols_mm + np.asarray(xray.translate[-2:]) + 0.0

    def _on_event(self, event) -> None:
        if isinstance(event, Failed):
            report_error(XvrInputError(event.message), "Evaluate")
            self.status.value = f"failed: {event.message}"
        elif isinstance(event, Evaluated):
            self._show_errors(event)
        elif isinstance(event, Replayed):
            self._show_replay(event)

    def _show_errors(self, event: Evaluated) -> None:
        """The metrics; the projections under both poses and an arrow from each true one to its
        estimate, in colours apart from the overlay's."""
        e = event.errors
        self.last_errors = e
        self.errors.value = metrics_text(e)
        name = self.xray.value.name
        true, pred = self._xray_coords(event.true_mm), self._xray_coords(event.pred_mm)
        for label, coords, color in (("true", true, TRUE_COLOR), ("estimated", pred, PRED_COLOR)):
            layer_name = f"{name} fiducials ({label})"
            if layer_name in self.viewer.layers:
                self.viewer.layers[layer_name].data = coords
            else:
                self.viewer.add_points(
                    coords,
                    name=layer_name,
                    size=6,
                    face_color=color,
                    border_color=color,
                    metadata={KIND: "projections"},
                )
        vectors = np.stack([true, pred - true], axis=1)
        layer_name = f"{name} errors (true to estimated)"
        if layer_name in self.viewer.layers:
            self.viewer.layers[layer_name].data = vectors
        else:
            self.viewer.add_vectors(
                vectors,
                name=layer_name,
                edge_color=ERROR_COLOR,
                edge_width=1.5,
                length=1.0,
                vector_style="arrow",
                metadata={KIND: "projections"},
            )
        self.status.value = (
            f"mTRE {e.mtre:.2f} mm, mPE {e.mpe:.2f} mm, mRPE {e.mrpe:.2f} mm over {e.n_fiducials} fiducials"
        )
        info(f"Evaluate: {self.status.value}")

    # ---------------------------------------------------------------- replay
    def replay(self) -> None:
        try:
            xray, volume = self.xray.value, self.volume.value
            if xray is None or volume is None:
                raise XvrInputError("choose the X-ray (with a registration) and the volume")
            trajectory = xray.metadata.get("trajectory") or []
            intr = Intrinsics(**xray.metadata["intrinsics"])
            args = (
                LayerSnapshot.of(volume),
                LayerSnapshot.of(self.labels_layer.value),
                self.label_ids.value,
                self.orientation_choice.value,
                intr,
                list(trajectory),
                self.n_frames.value,
            )
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
        frames = as_frame_axis(event.frames)
        pixel, offset = grid_placement(
            (intr["height"], intr["width"]), (intr["dely"], intr["delx"]), frames.shape[2:]
        )
        scale, translate = (1.0, SPANNING_PLANE_MM, *pixel), (0.0, 0.0, *offset)
        name = f"{xray.name} replay"
        meta = {KIND: "replay", "iterations": list(event.itrs)}
        for layer in self.viewer.layers:  # one magenta DRR at a time: no pink wash over the X-ray
            if layer.metadata.get(KIND) == "overlay" and layer.visible:
                layer.visible = False
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = frames
            layer.metadata.update(meta)
        else:
            self.viewer.add_image(
                frames,
                name=name,
                scale=scale,
                translate=translate,
                colormap="magenta",
                blending="additive",
                opacity=0.6,
                contrast_limits=OVERLAY_CONTRAST,
                metadata=meta,
            )
            labels = list(self.viewer.dims.axis_labels)
            labels[-4] = "replay frame"
            self.viewer.dims.axis_labels = labels
        self.viewer.dims.set_current_step(self.viewer.dims.ndim - 4, frames.shape[0] - 1)
        self.status.value = f"replay: {event.done}/{event.total} frames rendered"
