"""Shared GUI pieces: layer pickers, a small live plot, worker plumbing, notifications."""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable

import numpy as np
from magicgui.widgets import ComboBox, Container
from napari.layers import Image, Labels, Points
from napari.utils.notifications import show_error, show_info, show_warning

from ..errors import XvrInputError
from ._layers import KIND

_WIDGETS: dict[str, weakref.WeakSet] = {}


def remember(widget, kind: str) -> None:
    """Keep a weak reference so other widgets (e.g. Register) can find this one."""
    _WIDGETS.setdefault(kind, weakref.WeakSet()).add(widget)


def _unwrap(viewer):
    return getattr(viewer, "__wrapped__", viewer)  # napari may hand plugins a proxy


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


def while_alive(handler):
    """Wrap a worker callback so that it does nothing once its dock widget has been closed."""

    def call(*args):
        with contextlib.suppress(RuntimeError):  # "wrapped C/C++ object ... has been deleted"
            handler(*args)

    return call


class EventPump:
    """Worker events to a widget's handler on the main thread, throttled and never re-entered.

    Events are queued as they arrive and handled from a timer at most every `interval_ms`;
    queued events that `merge` can fold into one (progress: new values appended, the latest
    image wins) are folded, so a slow redraw never falls behind and never shows an older state
    after a newer one. A handler that processes Qt events (napari's progress bar does) cannot
    re-enter: a nested drain returns at once. `flush()` hands over what is left (at the end).
    """

    def __init__(self, handler: Callable, merge: Callable | None = None, interval_ms: int = 150):
        from qtpy.QtCore import QTimer

        self._handler, self._merge = handler, merge
        self._queue: list = []
        self._busy = False
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.flush)
        self._timer.start()
        self.handled = 0  # handler calls, for tests and logs
        self.nested = 0  # drains refused because one was running

    def push(self, event) -> None:
        if self._queue and self._merge is not None:
            merged = self._merge(self._queue[-1], event)
            if merged is not None:
                self._queue[-1] = merged
                return
        self._queue.append(event)

    def flush(self) -> None:
        if self._busy:
            self.nested += 1
            return
        self._busy = True
        try:
            while self._queue:
                event = self._queue.pop(0)
                self.handled += 1
                with contextlib.suppress(RuntimeError):  # the dock was closed meanwhile
                    self._handler(event)
        finally:
            self._busy = False

    def close(self) -> None:
        """Hand over what is queued, then stop the timer."""
        self.flush()
        self._timer.stop()


class Deferred:
    """Calls `apply(value)` with the latest value given to `set`, from a short real timer.

    Qt runs posted events (worker events, plot draws, canvas paints) back to back; work handed
    to a timer runs in a later pass of the event loop, after the input and timers that are due,
    so one event never becomes one long stall. A newer value replaces a pending one."""

    def __init__(self, apply: Callable, delay_ms: int = 1):
        self._apply, self._delay_ms = apply, delay_ms
        self._value = None
        self._armed = False

    def set(self, value) -> None:
        from qtpy.QtCore import QTimer

        self._value = value
        if not self._armed:
            self._armed = True
            QTimer.singleShot(self._delay_ms, self._fire)

    def cancel(self) -> None:
        self._value = None

    def _fire(self) -> None:
        self._armed = False
        value, self._value = self._value, None
        if value is not None:
            with contextlib.suppress(RuntimeError):  # the dock was closed meanwhile
                self._apply(value)


class Stoppable:
    """A dock widget whose runs take a ``stop_token``: Stop ends a run after the current
    iteration; closing the dock ends it quietly."""

    stop_token = None
    stop_message = "stopping after this iteration"

    def _stop_quietly(self, *_args) -> None:
        if self.stop_token is not None:
            self.stop_token.stop()

    def stop(self) -> None:
        """Ask the run to stop after the current iteration (what it did so far is kept)."""
        if self.stop_token is not None:
            self.stop_token.stop()
            self.status.value = self.stop_message


def report_error(err: Exception, what: str) -> None:
    """An exception from a worker or a button, as a napari notification."""
    why = str(err) if isinstance(err, XvrInputError) else f"{type(err).__name__}: {err}"
    show_error(f"{what}: {why}")


def info(message: str) -> None:
    show_info(message)


def warn(message: str) -> None:
    show_warning(message)


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


PLOT_COLOURS = {  # napari's dark and light themes: the plot reads like the rest of the window
    "dark": {
        "face": "#262930",
        "axes": "#1f2126",
        "text": "#f0f1f2",
        "grid": "#5a626c",
        "line": "#ffb000",
        "marker": "#7fb2ff",
    },
    "light": {
        "face": "#efebe9",
        "axes": "#ffffff",
        "text": "#3b3a39",
        "grid": "#a8a8a8",
        "line": "#c05800",
        "marker": "#1f5fbf",
    },
}


def napari_theme() -> str:
    """'dark' or 'light': napari's appearance setting ('system' and custom themes read as dark)."""
    try:
        from napari.settings import get_settings

        theme = str(get_settings().appearance.theme)
    except Exception:  # settings unavailable (e.g. a read-only config): napari's default
        return "dark"
    return "light" if theme == "light" else "dark"


class ActivityBar:
    """napari's activity-dock progress bar, moved at most every `every_s` seconds.

    Each update of napari's bar processes all pending Qt events (canvas paints, plot draws)
    inside the caller: updated per progress event, it made one 100-250 ms stall of the main
    thread per event under software GL."""

    def __init__(self, total: int, desc: str, every_s: float = 5.0):
        from napari.utils import progress

        self._bar = progress(total=total, desc=desc)
        self._every_s = every_s
        self._shown_at = time.perf_counter()
        self.n = 0

    @property
    def total(self) -> int:
        return self._bar.total

    @total.setter
    def total(self, value: int) -> None:
        self._bar.total = value

    def reach(self, n: int) -> None:
        """Record that `n` steps are done; napari's bar shows it if it was not moved lately."""
        self.n = max(self.n, n)
        if time.perf_counter() - self._shown_at >= self._every_s:
            self._bar.update(self.n - self._bar.n)
            self._shown_at = time.perf_counter()

    def close(self) -> None:
        self._bar.close()


class LivePlot(Container):
    """A matplotlib line plot embedded in a magicgui container (updated from the main thread),
    coloured for napari's theme, with optional stage markers.

    Lines are updated in place and redrawn at most every `min_redraw_s` (a full matplotlib draw
    takes 50-200 ms on a software-GL machine: drawing every event stalled the UI)."""

    def __init__(
        self,
        title: str,
        ylabel: str,
        xlabel: str = "iteration",
        height: int = 180,
        min_redraw_s: float = 0.5,
        theme: str | None = None,
    ):
        super().__init__(labels=False)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.colours = PLOT_COLOURS[theme or napari_theme()]
        c = self.colours
        self.figure = Figure(figsize=(3.5, 1.9), dpi=90, facecolor=c["face"])
        self.figure.subplots_adjust(left=0.2, right=0.96, bottom=0.24, top=0.86)  # fixed: no
        self.axes = self.figure.add_subplot(111, facecolor=c["axes"])  # tight_layout per draw
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(height)
        self.native.layout().addWidget(self.canvas)
        self.axes.set_title(title, fontsize=9, color=c["text"])
        self.axes.set_xlabel(xlabel, fontsize=8, color=c["text"])
        self.axes.set_ylabel(ylabel, fontsize=8, color=c["text"])
        self.axes.tick_params(labelsize=7, colors=c["text"])
        if xlabel in ("iteration", "frame", "step"):  # counts: no fractional ticks
            from matplotlib.ticker import MaxNLocator

            self.axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        for spine in self.axes.spines.values():
            spine.set_color(c["grid"])
        self.axes.grid(True, color=c["grid"], lw=0.4, alpha=0.6)
        self._lines: dict = {}
        self._markers: list = []
        self._min_redraw_s = min_redraw_s
        self._last_draw = -1e9
        self._draw_pending = False
        self.draws = 0  # redraws so far (tests, logs)
        self.canvas.draw_idle()

    def mark(self, x: float, label: str) -> None:
        """A dotted vertical line at `x` with `label` at its top (e.g. where a stage begins)."""
        line = self.axes.axvline(x, color=self.colours["marker"], ls=":", lw=1.0)
        # inside the axes, under their top edge: above it, labels ran into the title
        text = self.axes.text(
            x,
            0.97,
            f" {label}",
            transform=self.axes.get_xaxis_transform(),
            color=self.colours["marker"],
            fontsize=7,
            va="top",
            ha="left",
        )
        self._markers.append((x, label, line, text))
        self._request_draw()

    @property
    def markers(self) -> list[tuple[float, str]]:
        return [(x, label) for x, label, _, _ in self._markers]

    def clear(self) -> None:
        for line in self._lines.values():
            line.remove()
        self._lines.clear()
        for _, _, line, text in self._markers:
            line.remove()
            text.remove()
        self._markers.clear()
        if self.axes.get_legend() is not None:
            self.axes.get_legend().remove()
        self._request_draw()

    def set_lines(self, lines: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Show `lines` = {label: (x, y)} (the latest data wins; the redraw may come later)."""
        for label in set(self._lines) - set(lines):
            self._lines.pop(label).remove()
        for label, (x, y) in lines.items():
            if label in self._lines:
                self._lines[label].set_data(x, y)
            else:
                colour = self.colours["line"] if not self._lines else None
                (self._lines[label],) = self.axes.plot(x, y, label=label, lw=1.2, color=colour)
                if len(self._lines) > 1:
                    self.axes.legend(
                        fontsize=7, facecolor=self.colours["axes"], labelcolor=self.colours["text"]
                    )
        self.axes.relim()
        self.axes.autoscale_view()
        self._request_draw()

    def _request_draw(self) -> None:
        import time

        from qtpy.QtCore import QTimer

        wait = self._min_redraw_s - (time.perf_counter() - self._last_draw)
        if wait <= 0:
            self._draw()
        elif not self._draw_pending:
            self._draw_pending = True
            QTimer.singleShot(int(wait * 1000) + 1, self._draw)

    def _draw(self) -> None:
        import time

        self._draw_pending = False
        self._last_draw = time.perf_counter()
        self.draws += 1
        with contextlib.suppress(RuntimeError):  # the dock was closed meanwhile
            self.canvas.draw_idle()


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
