"""The DRR widget's rendering: renders requested as the pose controls move (a quick preview while
dragged, the full resolution once they settle) and the DRR layer they update."""

from __future__ import annotations

import contextlib
import time

import numpy as np
from napari.qt.threading import create_worker

from ..errors import XvrInputError
from ..geometry import Intrinsics, grid_placement, pose_from_matrix, pose_to_zxy
from ..imaging import display_range
from ._jobs import Failed, LayerSnapshot
from ._layer_helpers import upsert_image
from ._layers import KIND
from ._render_job import Rendered, RenderRequest, render_requests
from ._workers import report_error


def _placement(shown: Intrinsics, full: Intrinsics) -> tuple[tuple, tuple]:
    """Layer (scale, translate) of a DRR on `shown`'s grid over the full detector's extent:
    a preview's fewer, larger pixels cover the same mm as the full DRR (centres aligned)."""
    return grid_placement(
        (full.height, full.width),
        (full.dely, full.delx),
        (shown.height, shown.width),
        (shown.dely, shown.delx),
    )


class DrrRendering:
    """Rendering of :class:`._drr_widget.DrrPoseWidget` (a mixin)."""

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
