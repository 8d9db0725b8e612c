"""Layer helpers shared by the widgets: layer pickers, adding or updating and fitting layers, the
orientation control, and finding another docked widget."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable

import numpy as np
from magicgui.widgets import ComboBox, Container
from napari.layers import Image, Labels, Points

from ._layers import KIND

_WIDGETS: dict[str, weakref.WeakSet] = {}
_LISTENERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def remember(widget, kind: str) -> None:
    """Keep a weak reference so other widgets (e.g. Register) can find this one, and tell the
    viewer's listeners (:func:`on_state_change`) that a dock joined."""
    _WIDGETS.setdefault(kind, weakref.WeakSet()).add(widget)
    viewer = getattr(widget, "viewer", None)
    if viewer is not None:
        state_changed(viewer)


def _unwrap(viewer):
    return getattr(viewer, "__wrapped__", viewer)  # napari may hand plugins a proxy


def on_state_change(viewer, callback: Callable[[], None]) -> None:
    """Call the bound method `callback` whenever a plugin widget of `viewer` says that what the
    workflow reads changed (:func:`state_changed`); held weakly, so a closed dock drops out."""
    _LISTENERS.setdefault(_unwrap(viewer), []).append(weakref.WeakMethod(callback))


def state_changed(viewer) -> None:
    """Tell `viewer`'s listeners that a widget's state (a pose, a start, a result) changed."""
    listeners = _LISTENERS.get(_unwrap(viewer), [])
    listeners[:] = [ref for ref in listeners if ref() is not None]
    for ref in list(listeners):
        callback = ref()
        if callback is not None:
            callback()


def find_widget(kind: str, viewer):
    """The live widget of `kind` docked in `viewer` (or a proxy of it), if any."""
    for widget in list(_WIDGETS.get(kind, ())):
        if _unwrap(getattr(widget, "viewer", None)) is _unwrap(viewer):
            return widget
    return None


def _is_volume(layer) -> bool:
    return (
        isinstance(layer, Image)
        and layer.ndim == 3
        and not layer.rgb
        and (layer.metadata.get(KIND) in (None, "volume"))
    )


def _is_labels(layer) -> bool:
    return isinstance(layer, Labels) and layer.ndim == 3


def _is_xray(layer) -> bool:
    return isinstance(layer, Image) and layer.metadata.get(KIND) == "xray"


def _is_points3d(layer) -> bool:
    return isinstance(layer, Points) and layer.ndim == 3


PREDICATES: dict[str, Callable] = {
    "volume": _is_volume,
    "labels": _is_labels,
    "xray": _is_xray,
    "points": _is_points3d,
}


def layer_combo(viewer, kind: str, label: str, optional: bool = False) -> ComboBox:
    """A ComboBox of the viewer's layers of one kind, refreshed on reset_choices."""
    test = PREDICATES[kind]

    def choices(_widget=None):
        items = [(layer.name, layer) for layer in viewer.layers if test(layer)]
        return ([("(none)", None)] if optional else []) + items

    return ComboBox(label=label, choices=choices, nullable=optional)


def follow_layers(container: Container, viewer) -> None:
    """Refresh the container's layer pickers whenever layers come, go or are renamed."""

    def reset(event=None):
        with contextlib.suppress(RuntimeError):  # widget already deleted
            container.reset_choices()

    viewer.layers.events.inserted.connect(reset)
    viewer.layers.events.removed.connect(reset)
    viewer.layers.events.changed.connect(reset)


def _same(current, wanted) -> bool:
    """Whether a layer's attribute already has the wanted value (arrays, tuples, affines)."""
    current = getattr(current, "affine_matrix", current)
    wanted = getattr(wanted, "affine_matrix", wanted)
    try:
        a, b = np.asarray(current, dtype=float), np.asarray(wanted, dtype=float)
    except (TypeError, ValueError):
        return False
    return a.shape == b.shape and np.allclose(a, b, rtol=0.0, atol=1e-12)


def upsert_image(viewer, name: str, data: np.ndarray, **kwargs):
    """Update the image layer called `name` in place (data + given attributes) or add it.

    Only what changed is set: each setter refreshes the layer and its extent, which mid-run
    (a live DRR several times a second) cost the main thread tens of ms per update."""
    if name in viewer.layers:
        layer = viewer.layers[name]
        for key in ("scale", "translate", "affine"):
            if key in kwargs and not _same(getattr(layer, key), kwargs[key]):
                setattr(layer, key, kwargs[key])
        if "metadata" in kwargs:
            layer.metadata.update(kwargs["metadata"])
        layer.data = data
        if "contrast_limits" in kwargs and not _same(layer.contrast_limits, kwargs["contrast_limits"]):
            layer.contrast_limits = kwargs["contrast_limits"]
        return layer
    return viewer.add_image(data, name=name, **kwargs)


def extent_2d(*layers) -> np.ndarray:
    """The layers' joint 2D world extent, [[row0, col0], [row1, col1]]."""
    boxes = np.array([np.asarray(layer.extent.world)[:, -2:] for layer in layers])
    return np.array([boxes[:, 0].min(axis=0), boxes[:, 1].max(axis=0)])


def fit_2d(viewer, *layers, margin: float = 0.95) -> None:
    """Centre and zoom the 2D view on `layers` (napari's fit_to_view fails when a 2D layer
    shares the viewer with 3D ones); in grid mode each cell fits them (one camera for all)."""
    (r0, c0), (r1, c1) = extent_2d(*layers)
    camera = viewer.scene.camera
    center = list(camera.center)
    center[-2:] = [0.5 * (r0 + r1), 0.5 * (c0 + c1)]
    camera.center = tuple(center)
    height, width = viewer.canvas.viewbox_size(viewer.layers)
    camera.zoom = margin * min(height / max(r1 - r0, 1e-6), width / max(c1 - c0, 1e-6))


def orientation_combo(value: str | None = None) -> ComboBox:
    """The volume's orientation control (AP or PA), at the CLI's default unless `value`."""
    from .. import defaults
    from ..conventions import ORIENTATIONS

    return ComboBox(
        label="orientation", choices=list(ORIENTATIONS), value=value or defaults.reg("orientation")
    )
