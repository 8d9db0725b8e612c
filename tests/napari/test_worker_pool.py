"""More workers than Qt's global thread pool has threads: every one finishes, and the main thread
keeps running meanwhile (no worker waits on the main thread, so none can hold a pool thread
hostage while the main thread waits for the pool)."""

from __future__ import annotations

import time

import pytest
from qtpy.QtCore import QThreadPool, QTimer
from test_register_widget import _widget_on_samples

pytestmark = pytest.mark.gui


def test_more_workers_than_pool_threads_all_finish(make_napari_viewer, qtbot, tmp_path):
    pool = QThreadPool.globalInstance()
    before = pool.maxThreadCount()
    pool.setMaxThreadCount(2)  # a 2-core machine's pool
    try:
        viewer = make_napari_viewer(show=True)
        _, reg, _ = _widget_on_samples(viewer)
        reg.scales.value, reg.n_itrs.value = "8,4", "5,5"
        _, tr = viewer.window.add_plugin_dock_widget("napari-xvr", "Train")
        tr.volume.value = viewer.layers[0]
        tr.outpath.value = tmp_path / "model"
        tr.batch_size.value, tr.det_height.value, tr.delx.value = 2, 32, 12.0
        tr.n_total_itrs.value, tr.n_warmup_itrs.value, tr.n_grad_accum_itrs.value = 3, 1, 1
        tr.n_save_every_itrs.value, tr.n_drr_every_itrs.value = 3, 1
        tr.device.value = "cpu"
        _, drr = viewer.window.add_plugin_dock_widget("napari-xvr", "DRR and pose")
        ticks = []
        timer = QTimer()
        timer.setInterval(20)
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        timer.start()
        tr.start_button.native.click()
        reg.run()
        drr.intrinsics_from.value = viewer.layers["chest X-ray (synthetic)"]
        for step in range(4):  # render requests while both pool threads are busy
            drr.set_pose([step, 0.0, 0.0], [0.0, 850.0, 0.0])
        assert pool.activeThreadCount() <= 2
        qtbot.waitUntil(lambda: tr.worker is None and not reg.running and drr.idle, timeout=600_000)
        timer.stop()
        assert reg.result is not None and not reg.result.stopped
        assert tr.done is not None and tr.done.itr == 3, tr.status.value
        assert len(ticks) > 20  # the main thread ran all along
    finally:
        pool.setMaxThreadCount(before)
