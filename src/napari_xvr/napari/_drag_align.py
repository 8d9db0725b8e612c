"""Aligning by hand on the canvas: drag the DRR over the X-ray.

With "drag to align" ticked in the DRR and pose widget, a drag in the 2D view moves the pose
instead of the camera (the core's :mod:`napari_xvr.manual_pose`): a plain drag pans (the DRR
follows the mouse; the volume moves perpendicular to the central ray), Shift turns it about the
principal point (a rotation about the central ray), Ctrl moves it along the central ray (drag
up: toward the source, larger). Previews render while the mouse moves, the full DRR on release;
the pose at release enters the history ("drag").
"""

from __future__ import annotations

import numpy as np

from ..geometry import pose_from_matrix
from ..manual_pose import dolly, pan, roll

DOLLY_MM_PER_PX = 2.0
"""Ctrl-drag: mm along the central ray per detector pixel dragged up."""


class DragAlign:
    """Installs (`on`) or removes the viewer callbacks that drive `widget`'s pose."""

    def __init__(self, viewer, widget):
        self.viewer, self.widget = viewer, widget
        self._camera = None  # the camera's mouse_pan/mouse_zoom before, while on

    def set(self, on: bool) -> None:
        callbacks = self.viewer.mouse_drag_callbacks
        if on and self.drag not in callbacks:
            callbacks.append(self.drag)
            camera = self.viewer.scene.camera
            self._camera = (camera.mouse_pan, camera.mouse_zoom)
            camera.mouse_pan = False
        elif not on and self.drag in callbacks:
            callbacks.remove(self.drag)
            if self._camera is not None:
                self.viewer.scene.camera.mouse_pan, _ = self._camera
            self._camera = None

    def _principal_point(self) -> np.ndarray | None:
        """World (row, col) of the principal point on the X-ray layer, if there is one."""
        layer = self.widget.intrinsics_from.value
        if layer is None:
            return None
        intr = self.widget.intrinsics()
        sign = -1.0 if self.widget.reverse_x_axis.value else 1.0
        col = intr.width / 2 - sign * intr.x0 / intr.delx - 0.5
        row = intr.height / 2 + intr.y0 / intr.dely - 0.5
        data = np.zeros(layer.ndim)
        data[-2:] = [row, col]
        return np.asarray(layer.data_to_world(data))[-2:]

    def moved(self, start_matrix, start, now, modifiers) -> np.ndarray:
        """The pose (4x4) after dragging from world (row, col) `start` to `now`."""
        widget = self.widget
        intr, orientation = widget.intrinsics(), widget.orientation_choice.value
        pose = pose_from_matrix(start_matrix)
        d_row_mm, d_col_mm = np.subtract(now, start)
        if "Shift" in modifiers:
            centre = self._principal_point()
            if centre is None:
                return start_matrix
            a0 = np.arctan2(-(start[0] - centre[0]), start[1] - centre[1])
            a1 = np.arctan2(-(now[0] - centre[0]), now[1] - centre[1])
            moved = roll(pose, float(np.degrees(a1 - a0)), orientation, widget.reverse_x_axis.value)
        elif "Control" in modifiers:
            moved = dolly(pose, -d_row_mm / intr.dely * DOLLY_MM_PER_PX, orientation)
        else:
            moved = pan(
                pose,
                d_col_mm / intr.delx,
                d_row_mm / intr.dely,
                intr,
                orientation,
                widget.reverse_x_axis.value,
            )
        return moved.matrix[0].double().numpy()

    def drag(self, viewer, event):
        """napari drag callback: previews while moving, the full DRR and history on release."""
        if viewer.dims.ndisplay != 2 or self.widget.volume.value is None:
            return
        active = viewer.layers.selection.active  # e.g. clicking landmarks: that layer's turn
        if active is not None and str(getattr(active, "mode", "pan_zoom")) != "pan_zoom":
            return
        widget = self.widget
        start_matrix = widget.pose_matrix()
        start = np.asarray(event.position)[-2:]
        modifiers = {getattr(m, "name", str(m)) for m in event.modifiers}
        yield
        while event.type == "mouse_move":
            matrix = self.moved(start_matrix, start, np.asarray(event.position)[-2:], modifiers)
            widget.show_pose(matrix, preview=True)
            yield
        widget.show_pose(
            self.moved(start_matrix, start, np.asarray(event.position)[-2:], modifiers), preview=False
        )
        widget.remember_pose("drag")
