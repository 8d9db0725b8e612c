"""The DRR widget's C-arm in 3D: the source, the detector with the DRR on it and their labels
drawn around the volume, the 3D view fitted to them, and the detector view (2D layers hidden in 3D)."""

from __future__ import annotations

import contextlib
import warnings
import weakref

import numpy as np

from ..errors import XvrInputError
from ..imaging import display_range
from ._layer_helpers import fit_2d, upsert_image
from ._layers import KIND
from ._workers import report_error

CARM = "C-arm"
SOURCE = "X-ray source"
DETECTOR = "C-arm detector image"
LABELS = "C-arm labels"
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


def _label_points(outline) -> np.ndarray:
    """Where the source's and the detector's labels go: just beyond each, along the ray."""
    ray = outline.center - outline.source
    return np.stack([outline.source - 0.06 * ray, outline.center + 0.2 * ray])


class CarmView:
    """The C-arm in 3D of :class:`._drr_widget.DrrPoseWidget` (a mixin)."""

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
