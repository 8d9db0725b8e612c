"""Saving and restoring a session in the viewer (the core's :mod:`napari_xvr.session`).

What is saved: the layers that have files (volume, labels, X-ray; by path), the DRR and pose
widget's pose and history, the options of the DRR and pose and Register widgets (by attribute:
layer choices by name), and the last saved result. Restoring opens the layers that are not
open yet, docks the DRR and pose widget and sets it all back.
"""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import ComboBox, Container, FileEdit, PushButton
from magicgui.widgets.bases import ValueWidget
from napari.layers import Layer

from ..errors import XvrInputError
from ..pose_history import PoseHistory
from ..session import SUFFIX, Session, read_session, write_session
from ._layer_helpers import find_widget
from ._layers import KIND
from ._tooltips import controls
from ._workers import info, run_reported

OPTION_WIDGETS = ("drr", "register")
ROLE_OF = {"volume": "volume", "labels": "labels", "xray": "xray"}


def widget_options(widget) -> dict:
    """Every value control of `widget` by attribute name (layers by name, paths as text)."""
    options = {}
    for attr, control in controls(widget, panels=False):
        if isinstance(control, PushButton):
            continue
        value = control.value
        if isinstance(value, Layer):
            value = value.name
        elif isinstance(value, Path):
            value = str(value)
        if value is None or isinstance(value, str | int | float | bool):
            options[attr] = value
    return options


def apply_options(widget, options: dict, viewer) -> None:
    """Set `widget`'s controls from `options`; a layer by its name, what no longer fits skipped."""
    for attr, value in options.items():
        control = getattr(widget, attr, None)
        if not isinstance(control, ValueWidget):
            continue
        if isinstance(control, ComboBox) and isinstance(value, str) and value in viewer.layers:
            control.reset_choices()  # layers just opened may not be offered yet
            if viewer.layers[value] in control.choices:
                value = viewer.layers[value]
        try:
            control.value = value
        except (ValueError, TypeError):  # a choice that is gone, a value out of range
            continue


def session_of(viewer) -> Session:
    """The viewer's session as it stands."""
    layers = [
        {"name": layer.name, "role": ROLE_OF[layer.metadata[KIND]], "path": layer.metadata["path"]}
        for layer in viewer.layers
        if layer.metadata.get(KIND) in ROLE_OF and layer.metadata.get("path")
    ]
    session = Session(layers)
    drr = find_widget("drr", viewer)
    if drr is not None:
        session.pose = drr.pose_matrix().tolist()
        session.history = drr.history.to_json()
    for kind in OPTION_WIDGETS:
        widget = find_widget(kind, viewer)
        if widget is not None:
            session.options[kind] = widget_options(widget)
    register = find_widget("register", viewer)
    folder = getattr(register, "last_folder", None)
    session.result = None if folder is None else str(folder)
    return session


def restore(viewer, session: Session) -> None:
    """Open `session`'s layers (those not open yet), then set the widgets back."""
    from ._reader import read_one

    open_paths = {layer.metadata.get("path") for layer in viewer.layers}
    for entry in session.layers:
        if entry["path"] in open_paths:
            continue
        for data, kwargs, kind in read_one(Path(entry["path"])):
            if kind in ("image", "labels") and kwargs.get("metadata", {}).get(KIND) in ROLE_OF:
                kwargs = {**kwargs, "name": entry["name"]}
            getattr(viewer, f"add_{kind}")(data, **kwargs)
    drr = find_widget("drr", viewer)
    if drr is None:
        _, drr = viewer.window.add_plugin_dock_widget("napari-xvr", "DRR and pose")
    for kind in OPTION_WIDGETS:
        widget = find_widget(kind, viewer)
        if widget is not None and kind in session.options:
            apply_options(widget, session.options[kind], viewer)
    if session.history:
        drr.history = PoseHistory.from_json(session.history)
    if session.pose is not None:
        drr.set_pose_matrix(session.pose, source=None if session.history else "session")


class SessionPanel(Container):
    """A file and Save / Open buttons (part of the DRR and pose widget)."""

    def __init__(self, viewer):
        super().__init__(labels=False)
        self.viewer = viewer
        self.path = FileEdit(
            label="session",
            mode="w",
            filter=f"*{SUFFIX}",
            tooltip="one human-readable file: layers by path, the pose and its "
            "history, the widgets' options, the last result",
        )
        self.save_button = PushButton(text="Save session")
        self.open_button = PushButton(text="Open session")
        self.extend(
            [
                self.path,
                Container(layout="horizontal", labels=False, widgets=[self.save_button, self.open_button]),
            ]
        )
        self.save_button.changed.connect(lambda *_: self._guarded(self.save))
        self.open_button.changed.connect(lambda *_: self._guarded(self.open))

    def _file(self) -> Path:
        text = self.path.line_edit.value.strip()
        if not text:
            raise XvrInputError("choose a session file name first")
        return Path(text)

    def save(self, overwrite: bool = True) -> Path:
        written = write_session(self._file(), session_of(self.viewer), overwrite=overwrite)
        info(f"Session saved to {written}")
        return written

    def open(self) -> None:
        restore(self.viewer, read_session(self._file()))

    def _guarded(self, action) -> None:
        run_reported(action, "Session")
