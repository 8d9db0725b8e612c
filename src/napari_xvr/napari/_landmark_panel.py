"""Landmarks in the viewer: click pairs on the X-ray and on the volume, then the pose from them.

Two Points layers: one drawn on the X-ray layer (its pixels), one in the volume's world (mm,
napari-xvr's frame: the volume's centre at the origin), paired in the order they were clicked.
"Pose from landmarks" runs the core's PnP solve (:func:`napari_xvr.register.pnp.solve_pose`) in
a worker and sets the DRR widget's pose (one Undo away from the pose before); each X-ray point is
then coloured by its pair's reprojection error, and the pairs that stand out are labelled with it.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import Container, PushButton
from napari.qt.threading import create_worker

from ..errors import XvrInputError
from ._dock import StatusLine
from ._layers import KIND
from ._workers import report_error, run_reported

XRAY_POINTS = "landmarks on X-ray"
VOLUME_POINTS = "landmarks on volume"
FITTED_COLOUR, OUTLIER_COLOUR = "#3ddc84", "#ff4040"


class LandmarkPanel(Container):
    """The landmark controls of the DRR and pose widget (`pose_widget`)."""

    def __init__(self, viewer, pose_widget):
        super().__init__(labels=False)
        self.viewer, self.pose_widget = viewer, pose_widget
        self.add_button = PushButton(
            text="Add landmark layers",
            tooltip="click points on the X-ray, then the same anatomy on "
            "the volume (any slice or 3D), in the same order",
        )
        self.solve_button = PushButton(
            text="Pose from landmarks",
            tooltip="4 or more pairs: the pose that reprojects the volume's points onto the X-ray's best",
        )
        self.status = StatusLine("4+ pairs: X-ray point i <-> volume point i")
        self.worker = None
        self.last_fit = None
        self.extend(
            [
                Container(layout="horizontal", labels=False, widgets=[self.add_button, self.solve_button]),
                self.status,
            ]
        )
        self.add_button.changed.connect(lambda *_: self._guarded(self.add_layers))
        self.solve_button.changed.connect(lambda *_: self._guarded(self.solve))

    def _guarded(self, action) -> None:
        run_reported(action, "Landmarks", self.status)

    def add_layers(self) -> None:
        """The two Points layers (kept when they exist), the X-ray's ready to click on."""
        xray = self.pose_widget.intrinsics_from.value
        volume = self.pose_widget.volume.value
        if xray is None or volume is None:
            raise XvrInputError("choose the volume and, in 'intrinsics from', the X-ray layer first")
        if VOLUME_POINTS not in self.viewer.layers:
            points = self.viewer.add_points(
                np.empty((0, 3)),
                name=VOLUME_POINTS,
                ndim=3,
                size=6,
                face_color="cyan",
                metadata={KIND: "landmarks"},
                features={"label": np.empty(0, dtype=object)},
                text={"string": "{label}", "color": "cyan", "size": 9, "translation": [0, 0, -8]},
            )
            points.events.data.connect(lambda _e: self._number(points))
        if XRAY_POINTS not in self.viewer.layers:
            layer = self.viewer.add_points(
                np.empty((0, 2)),
                name=XRAY_POINTS,
                ndim=2,
                scale=xray.scale,
                translate=xray.translate,
                size=6,
                face_color="yellow",
                metadata={KIND: "landmarks", "xray": xray.name},
                text={"string": "{label}", "color": "yellow", "size": 9, "translation": [-8, 0]},
                features={"label": np.empty(0, dtype=object)},
            )
            layer.events.data.connect(lambda _e: self._number(layer))
            self.viewer.layers.selection.active = layer
            layer.mode = "add"
        self.status.value = "click on the X-ray, then the same points on the volume"

    @staticmethod
    def _number(layer) -> None:
        """Each point labelled with its pair's number (its error cleared until the next solve)."""
        count = len(layer.data)
        if len(layer.features) == count:
            layer.features["label"] = [str(i + 1) for i in range(count)]
            layer.refresh_text()

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(X-ray pixels (N, 2: column, row), volume points (N, 3 world mm)) in click order."""
        missing = [n for n in (XRAY_POINTS, VOLUME_POINTS) if n not in self.viewer.layers]
        if missing:
            raise XvrInputError(f"no layer {missing[0]!r}: press 'Add landmark layers' and click the pairs")
        rows_cols = np.asarray(self.viewer.layers[XRAY_POINTS].data, dtype=np.float64)
        world = np.asarray(self.viewer.layers[VOLUME_POINTS].data, dtype=np.float64)
        if len(rows_cols) != len(world):
            raise XvrInputError(
                f"{len(rows_cols)} points on the X-ray but {len(world)} on the "
                "volume: click one volume point for each X-ray point, in order"
            )
        return rows_cols[:, ::-1], world

    def solve(self) -> None:
        """The pose from the pairs, in a worker; the pose widget takes it."""
        from ..register.pnp import solve_pose

        if self.worker is not None:
            return
        pixels, world = self.pairs()
        widget = self.pose_widget
        args = (
            world,
            pixels,
            widget.intrinsics(),
            widget.orientation_choice.value,
            widget.reverse_x_axis.value,
        )
        start = widget.pose_matrix()

        def run():
            from ..geometry import pose_from_matrix

            return solve_pose(*args, start=pose_from_matrix(start), where="the landmarks")

        self.status.value = f"solving from {len(pixels)} pairs ..."
        self.worker = create_worker(run, _start_thread=False)
        self.worker.returned.connect(self._on_solved)
        self.worker.errored.connect(lambda err: report_error(err, "Landmarks"))
        self.worker.finished.connect(self._on_finished)
        self.worker.start()

    def _on_finished(self) -> None:
        self.worker = None

    def _on_solved(self, fit) -> None:
        from ..register.pnp import expected_error_text

        self.last_fit = fit
        self.pose_widget.set_pose_matrix(fit.pose.matrix[0].numpy(), "landmarks")
        layers = self.viewer.layers
        layer = layers[XRAY_POINTS] if XRAY_POINTS in layers else None  # noqa: SIM401 (no .get)
        if layer is not None and len(layer.data) == len(fit.errors_px):
            show_errors(layer, fit)
        worst = int(np.argmax(fit.errors_mm)) + 1
        self.status.value = (
            f"pose from {len(fit.errors_px)} pairs: reprojection RMS "
            f"{fit.rms_mm:.2f} mm ({fit.rms_px:.2f} px), worst pair {worst} "
            f"{fit.errors_mm.max():.2f} mm; {expected_error_text(fit)} (Undo: the pose before)"
        )


def show_errors(layer, fit) -> None:
    """Each X-ray point coloured by its pair's reprojection error (green, red for the pairs the core
    calls outliers) with its error in the features (shown on hover); only the outliers' labels carry
    the error, so that many close pairs stay readable."""
    outliers = fit.outliers
    layer.features["error_mm"] = fit.errors_mm
    layer.features["label"] = [
        f"{i + 1}: {e:.1f} mm" if out else str(i + 1)
        for i, (e, out) in enumerate(zip(fit.errors_mm, outliers, strict=True))
    ]
    layer.face_color = [OUTLIER_COLOUR if out else FITTED_COLOUR for out in outliers]
    layer.refresh_text()
