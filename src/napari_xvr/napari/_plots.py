"""The widgets' live plot (loss or similarity curves with markers) in napari's theme colours."""

from __future__ import annotations

import contextlib

import numpy as np
from magicgui.widgets import Container

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
        legend = self.axes.get_legend()
        if legend is not None:
            legend.remove()
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
