"""What every napari-xvr dock shares: a status line that never widens the dock, options locked
while a run goes, and a Run/Stop row."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from magicgui.widgets import Container, Label, PushButton
from magicgui.widgets.bases import BaseValueWidget, ButtonWidget
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QComboBox, QFrame, QScrollArea, QSizePolicy


class StatusLine(Label):
    """Status text wrapped at word breaks to the dock's width, at most ``LINES`` lines, the last
    elided, with the whole text in its tooltip: a long message never widens the dock or pushes
    Run/Stop out of sight, and its height never jumps. ``value`` is always the whole text."""

    LINES = 2

    def __init__(self, text: str = "idle"):
        self._full = str(text)
        super().__init__(value=text)
        native = self.native
        native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        native.setMinimumWidth(10)
        native.setFixedHeight(self.LINES * native.fontMetrics().lineSpacing() + 4)
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

    TONES = {"ok": "", "suspect": "color: #ffb000;", "failed": "color: #ff5f5f;"}

    def set_tone(self, tone: str = "ok") -> None:
        """Colour the line for a verdict: ok (the theme's), suspect (amber), failed (red)."""
        self.native.setStyleSheet(self.TONES.get(tone, ""))

    def _show(self) -> None:
        native = self.native
        metrics = native.fontMetrics()
        width = max(10, native.width() - 4)
        lines = wrap_words(self._full, width, metrics.horizontalAdvance, self.LINES)
        elide = Qt.TextElideMode.ElideRight
        native.setText("\n".join(metrics.elidedText(line, elide, width) for line in lines))


def wrap_words(text: str, width: int, advance, most: int) -> list[str]:
    """`text` broken at spaces into lines no wider than `width` (as `advance` measures), at most
    `most` lines: the last holds the rest (and a word wider than `width` a line of its own), for
    the caller to elide."""
    lines: list[str] = []
    rest = " ".join(text.split("\n"))
    while rest and len(lines) < most - 1:
        words, line = rest.split(" "), ""
        taken = 0
        for i, word in enumerate(words):
            trial = word if not line else f"{line} {word}"
            if advance(trial) > width and line:
                break
            line, taken = trial, i + 1
        lines.append(line.strip())
        rest = " ".join(words[taken:])
    return [*lines, rest] if rest or not lines else lines


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
        elif isinstance(widget, BaseValueWidget | ButtonWidget):  # FileEdit too
            yield widget


def run_stop_row(run: PushButton, stop: PushButton) -> Container:
    """Run and Stop side by side."""
    row = Container(widgets=[run, stop], layout="horizontal", labels=False)
    row.margins = (0, 4, 0, 4)
    return row


MIN_ROWS_PX = 160  # a dock never shrinks below a few rows of options (the rest scroll)


def scrolled(outer: Container, body: Container, pinned=()) -> QScrollArea:
    """`body` in a vertical scroll area, `pinned` (Run/Stop, status) below it, always in view.

    napari docks a magicgui widget's ``native``, the widget inside magicgui's own scroll area
    (``scrollable=True``), so that scroll area never reaches the dock: this one is the dock's.
    """
    outer.extend([body, *pinned])
    outer.margins = (0, 0, 0, 0)
    scroll = _Scroll()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    for combo in body.native.findChildren(QComboBox):  # long layer names do not widen the dock
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(12)
    scroll.setWidget(body.native)  # out of the outer layout, into the scroll area
    outer.native.layout().insertWidget(0, scroll, 1)
    _keep_wide(scroll)
    return scroll


class _Scroll(QScrollArea):
    """A vertical scroll area as wide as its content needs (never cutting it off), of any height."""

    def minimumSizeHint(self):  # noqa: N802 (Qt's name)
        hint = super().minimumSizeHint()
        body = self.widget()
        if body is not None:
            hint.setWidth(
                body.minimumSizeHint().width()
                + self.verticalScrollBar().sizeHint().width()
                + 2 * self.frameWidth()
            )
        return hint


def group(title: str, *widgets) -> Container:
    box = Container(widgets=[Label(value=f"<b>{title}</b>"), *widgets], labels=True)
    box.margins = (0, 4, 0, 0)
    return box


def _keep_wide(scroll) -> None:
    """Keep `scroll` as wide as its widest row: napari's theme widens rows after construction,
    and a row wider than the scroll area would be cut off (it never scrolls sideways)."""
    inner = scroll.widget()

    def fit_width() -> None:
        with contextlib.suppress(RuntimeError):  # the dock was closed
            scroll.setMinimumWidth(
                inner.minimumSizeHint().width()
                + 2 * scroll.frameWidth()
                + scroll.verticalScrollBar().sizeHint().width()
            )

    scroll._xvr_fit = _OnResize(fit_width)  # lives as long as the scroll area
    inner.installEventFilter(scroll._xvr_fit)
    scroll.setMinimumHeight(MIN_ROWS_PX)
    fit_width()


def wrapped_label(text: str = "") -> Label:
    """A label that wraps to the dock's width (never widens it)."""
    label = Label(value=text)
    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.native.setMinimumWidth(10)
    return label
