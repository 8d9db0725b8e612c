"""Orientation letters at an X-ray layer's edges (the patient's directions for a pose), each on a
dark badge so that it reads on a pale image, and the radiological display they decide: the
Register and Track views draw them alike."""

from __future__ import annotations

import numpy as np

from ..geometry import pose_from_matrix
from ..orientation import edge_labels, radiological_mirror
from ._layers import KIND
from .api import intrinsics_of

EDGES = ("left", "right", "top", "bottom")
LETTER_BADGE_PX = 24
"""The dark square behind each orientation letter (screen pixels): readable on a pale X-ray."""


def letters_for(xray, matrix, orientation: str, reverse_x_axis: bool) -> dict[str, str]:
    """The letters at `xray`'s edges for the DRR at pose `matrix` (None: blank letters)."""
    if matrix is None:
        return dict.fromkeys(EDGES, "")
    return edge_labels(pose_from_matrix(matrix), intrinsics_of(xray), orientation, reverse_x_axis)


def mirror_view(viewer, letters: dict | None, radiological: bool) -> bool:
    """The 2D canvas mirrored left-right when `radiological` is on and the X-ray with these
    `letters` is a frontal view stored with the patient's left on its left (core
    :func:`~napari_xvr.orientation.radiological_mirror`); as stored otherwise. Returns whether
    it is mirrored."""
    mirror = bool(radiological and letters and radiological_mirror(letters))
    camera = viewer.scene.camera
    wanted = ("down", "left" if mirror else "right")
    if tuple(str(getattr(v, "value", v)) for v in camera.orientation2d) != wanted:
        camera.orientation2d = wanted
    return mirror


def show_letters(viewer, xray, letters: dict[str, str]) -> None:
    """The points layer ``<xray> orientation``: `letters` just inside `xray`'s edges."""
    (r0, c0), (r1, c1) = np.asarray(xray.extent.world)[:, -2:]
    inset_r, inset_c = 0.04 * (r1 - r0), 0.04 * (c1 - c0)
    rm, cm = 0.5 * (r0 + r1), 0.5 * (c0 + c1)
    where = {
        "left": (rm, c0 + inset_c),
        "right": (rm, c1 - inset_c),
        "top": (r0 + inset_r, cm),
        "bottom": (r1 - inset_r, cm),
    }
    points = np.array([where[edge] for edge in EDGES], dtype=float)
    features = {"label": [letters[edge] for edge in EDGES]}
    name = f"{xray.name} orientation"
    if name in viewer.layers:
        layer = viewer.layers[name]
        if np.array_equal(layer.data, points) and list(layer.features["label"]) == features["label"]:
            return  # unchanged: a points layer's refresh costs the main thread ~20 ms
        layer.data, layer.features = points, features
        layer.face_color = layer.border_color = _badges(features["label"])
        layer.text.refresh(layer.features)
        return
    viewer.add_points(
        points,
        name=name,
        features=features,
        size=LETTER_BADGE_PX,
        canvas_size_limits=(LETTER_BADGE_PX, LETTER_BADGE_PX),  # the same on screen at any zoom
        symbol="square",
        face_color=_badges(features["label"]),
        border_color=_badges(features["label"]),
        border_width=0,
        opacity=1.0,
        text={"string": "{label}", "color": "yellow", "size": 14, "anchor": "center"},
        metadata={KIND: "orientation"},
    )


def _badges(labels) -> np.ndarray:
    """Each letter's badge colour: translucent black behind a letter, nothing where it is blank."""
    return np.array([[0.0, 0.0, 0.0, 0.7 if label else 0.0] for label in labels])
