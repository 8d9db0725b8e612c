"""What every napari-xvr dock shares: a status line that never widens the dock, options locked
while a run goes, and a Run/Stop row."""

from __future__ import annotations

from collections.abc import Iterable

from magicgui.widgets import Container, Label, PushButton
from magicgui.widgets.bases import ButtonWidget, ValueWidget
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QSizePolicy


class StatusLine(Label):
    """One line of status, elided to the dock's width with the whole text in its tooltip, so a
    long message never widens the dock and pushes Run/Stop out of sight. ``value`` is always
    the whole text."""

    def __init__(self, text: str = "idle"):
        self._full = str(text)
        super().__init__(value=text)
        native = self.native
        native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        native.setMinimumWidth(10)
        self._filter = _OnResize(self._show)
        native.installEventFilter(self._filter)

    @property
    def value(self) -> str:
        return self._full

    @value.setter
    def value(self, text) -> None:
        self._full = str(text)
        self.tooltip = self._full
        self._show()
        self.changed.emit(self._full)

    def _show(self) -> None:
        native = self.native
        width = max(10, native.width() - 4)
        native.setText(native.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight,
                                                       width))


class _OnResize(QObject):
    def __init__(self, callback):
        super().__init__()
        self._callback = callback

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Resize:
            self._callback()
        return False


def lock_options(container: Container, running: bool, keep: Iterable = ()) -> None:
    """Disable every option of `container` (nested ones too) while a run goes, except `keep`
    (e.g. Stop); enable them again after. Widgets switched off for their own reason (an
    optimiser's unused options) stay off: they are restored as they were."""
    kept = {id(w) for w in keep}
    saved = getattr(container, "_xvr_locked", None)
    if running:
        if saved is not None:
            return
        saved = {}
        for widget in _leaves(container):
            if id(widget) in kept:
                continue
            saved[id(widget)] = (widget, widget.enabled)
            widget.enabled = False
        container._xvr_locked = saved
    elif saved is not None:
        for widget, enabled in saved.values():
            widget.enabled = enabled
        container._xvr_locked = None


def _leaves(container: Container):
    for widget in container:
        if isinstance(widget, Container):
            yield from _leaves(widget)
        elif isinstance(widget, ValueWidget | ButtonWidget):
            yield widget


def run_stop_row(run: PushButton, stop: PushButton) -> Container:
    """Run and Stop side by side."""
    row = Container(widgets=[run, stop], layout="horizontal", labels=False)
    row.margins = (0, 4, 0, 4)
    return row
