"""Worker plumbing of the widgets: events pumped to the main thread, deferred calls, stoppable
jobs, the activity-dock progress bar and notifications."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from napari.utils.notifications import show_error, show_info, show_warning

from ..errors import XvrInputError


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


def run_reported(action: Callable[[], object], what: str, status=None) -> None:
    """Run a button's `action`; an exception becomes a notification (and `status`'s text)."""
    try:
        action()
    except Exception as err:
        report_error(err, what)
        if status is not None:
            status.value = f"failed: {err}"


def info(message: str) -> None:
    show_info(message)


def warn(message: str) -> None:
    show_warning(message)


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
