"""The UI stays responsive while a registration and a training run in their workers: a timer on
the main thread measures the gaps between its ticks, bounded by the issue's targets or, on a busy
machine, a few times the same machine's gaps at rest measured just before; events reach the
widgets throttled, in order, and their handlers never re-enter (napari's progress bar processes
Qt events)."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest
from qtpy.QtCore import QTimer
from test_register_widget import _widget_on_samples

pytestmark = pytest.mark.gui

P95_MS, MAX_MS = 100.0, 250.0  # the targets for the main thread's longest waits


class GapMeter:
    """Ticks every 10 ms on the main thread and records the time between ticks, and the
    interpreter's full garbage collections meanwhile (any thread's holds the GIL)."""

    def __init__(self):
        self.times: list[float] = []
        self.full_collections: list[tuple[float, float]] = []
        self._gc_start = 0.0
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(lambda: self.times.append(time.perf_counter()))

    def _on_gc(self, phase: str, info: dict) -> None:
        if info["generation"] == 2:
            if phase == "start":
                self._gc_start = time.perf_counter()
            else:
                self.full_collections.append((self._gc_start, time.perf_counter()))

    def __enter__(self):
        gc.callbacks.append(self._on_gc)
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.stop()
        gc.callbacks.remove(self._on_gc)

    def gaps_ms(self) -> np.ndarray:
        return np.diff(self.times) * 1e3

    def worst_gap(self) -> str:
        """Where the longest gap was, and any full collection inside it (for a failure)."""
        gaps = self.gaps_ms()
        i = int(np.argmax(gaps))
        start, end = self.times[i], self.times[i + 1]
        inside = [f"{(e - s) * 1e3:.0f} ms" for s, e in self.full_collections if e >= start and s <= end]
        return (
            f"longest gap {gaps[i]:.0f} ms at {start - self.times[0]:.1f} s; full garbage "
            f"collections in it: {', '.join(inside) or 'none'}"
        )


def _report(what: str, gaps: np.ndarray) -> tuple[float, float]:
    p95, worst = float(np.percentile(gaps, 95)), float(gaps.max())
    print(f"{what}: {len(gaps)} gaps, p95 {p95:.0f} ms, max {worst:.0f} ms")
    return p95, worst


def bounds(qtbot, ms: int = 600) -> tuple[float, float]:
    """The (p95, max) gap bounds for this machine now: the issue's targets, or 3x the gaps of the
    main thread at rest measured just before where that is more (a busy machine raises both)."""
    with GapMeter() as idle:
        qtbot.wait(ms)
    idle_p95, idle_worst = _report("idle", idle.gaps_ms())
    return max(P95_MS, 3 * idle_p95), max(MAX_MS, 3 * idle_worst)


def test_registering_keeps_the_ui_responsive(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    _, reg, _ = _widget_on_samples(viewer)
    reg.renderer.value = "trilinear"  # a longer run: more time to measure
    reg.scales.value, reg.n_itrs.value = "8,4,2", "30,20,10"
    handled = []
    original = reg._on_event

    def spy(event):  # every handled event, and whether a handler was already running
        handled.append((type(event).__name__, getattr(event, "total_itr", None), spy.depth))
        spy.depth += 1
        try:
            original(event)
        finally:
            spy.depth -= 1

    spy.depth = 0
    reg._on_event = spy
    p95_bound, max_bound = bounds(qtbot)
    gc.collect()  # the suite's heap, not the session's: no full collection mid-run
    reg.run()  # the click itself (snapshot of the inputs, the view, the overlay layer) is one
    with GapMeter() as meter:  # UI action; then the run goes on in its worker
        qtbot.waitUntil(lambda: not reg.running, timeout=300_000)
    assert reg.result is not None and not reg.result.stopped
    assert all(depth == 0 for *_, depth in handled), "a handler re-entered"
    itrs = [itr for name, itr, _ in handled if name == "Progress"]
    assert itrs == sorted(itrs), "an older progress event was shown after a newer one"
    assert handled[-1][0] == "Finished"
    assert reg.status.value.startswith("done [")
    p95, worst = _report("registration", meter.gaps_ms())
    assert p95 < p95_bound and worst < max_bound, (p95, worst, meter.worst_gap())


def test_training_keeps_the_ui_responsive(make_napari_viewer, qtbot, tmp_path):
    """Measured from the first step on; the worker's set-up (reading the CT with SimpleITK, which
    holds the GIL, building the network) is bounded separately: under a second at most."""
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-xvr", "chest_ct")
    _, tr = viewer.window.add_plugin_dock_widget("napari-xvr", "Train")
    tr.outpath.value = tmp_path / "model"
    tr.batch_size.value, tr.det_height.value, tr.delx.value = 2, 32, 12.0
    tr.n_total_itrs.value, tr.n_warmup_itrs.value, tr.n_grad_accum_itrs.value = 12, 1, 1
    tr.n_save_every_itrs.value, tr.n_drr_every_itrs.value = 6, 2
    tr.device.value = "cpu"
    started = []
    original = tr._on_event

    def spy(event):
        if type(event).__name__ == "TrainStarted":
            started.append(time.perf_counter())
        original(event)

    tr._on_event = spy
    p95_bound, max_bound = bounds(qtbot)
    gc.collect()  # as for the registration
    tr.start_button.native.click()
    with GapMeter() as meter:
        qtbot.waitUntil(lambda: tr.worker is None, timeout=300_000)
    assert tr.done is not None and tr.done.itr == 12, tr.status.value
    assert [i for i, _ in tr.losses] == list(range(12))  # every loss, in order, none twice
    times = np.asarray(meter.times)
    gaps = np.diff(times) * 1e3
    setup = gaps[times[1:] <= started[0]]
    p95, worst = _report("training", gaps[times[1:] > started[0]])
    if len(setup):
        _report("training set-up", setup)
        assert setup.max() < max(1000.0, 4 * max_bound), setup.max()
    assert p95 < p95_bound and worst < max_bound, (p95, worst, meter.worst_gap())
