"""The README's scripted session in a fresh Python (no test-suite workarounds): docking the
widgets and registering under Mesa's software OpenGL must not segfault (triton and llvmpipe
each load their own LLVM; see napari_xvr.napari._triton)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.gui

README_SESSION = textwrap.dedent("""
    import sys
    import napari
    from qtpy.QtCore import QCoreApplication, QThreadPool
    from napari_xvr.napari import sample_files, sample_xray_file

    viewer = napari.Viewer()
    ct, labels = sample_files()
    xray_path, truth = sample_xray_file()
    for path in (ct, labels, xray_path):
        viewer.open(path, plugin="napari-xvr")
    _, drr = viewer.window.add_plugin_dock_widget("napari-xvr", "DRR and pose")
    _, reg = viewer.window.add_plugin_dock_widget("napari-xvr", "Register")
    drr.intrinsics_from.value = viewer.layers["xray_000"]
    drr.pose_from_header()
    reg.outdir.value = sys.argv[1]
    reg.scales.value, reg.n_itrs.value = "8", "3"
    reg.run()
    while reg.running:
        QCoreApplication.processEvents()
    QThreadPool.globalInstance().waitForDone(60_000)  # the worker's thread ends before the close
    print("triton:", sys.modules.get("triton", "absent"))
    viewer.close()
""")

GUI_FIRST = textwrap.dedent("""
    import sys
    import napari

    viewer = napari.Viewer()  # the GL context exists before the plugin is imported
    viewer.window.add_plugin_dock_widget("napari-xvr", "Register")
    viewer.window.add_plugin_dock_widget("napari-xvr", "Train")
    import diffdrr.metrics, torch._dynamo, torch.optim  # what the workers import
    from qtpy.QtCore import QThreadPool
    QThreadPool.globalInstance().waitForDone(60_000)
    print("triton:", sys.modules.get("triton", "absent"))
    viewer.close()
""")


@pytest.mark.parametrize("script", [README_SESSION, GUI_FIRST], ids=["readme", "viewer-first"])
def test_docking_and_running_does_not_crash(script, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NAPARI_XVR_TRITON"}
    env.setdefault("QT_QPA_PLATFORM", "xcb")
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "results")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert run.returncode == 0, (run.returncode, run.stderr[-3000:])
    assert "triton: None" in run.stdout or "triton: <module" in run.stdout, run.stdout


def test_llvm_detection_reads_the_process_maps(tmp_path):
    from napari_xvr.napari._triton import llvm_loaded

    maps = tmp_path / "maps"
    maps.write_text("7f00 r-xp /usr/lib/x86_64-linux-gnu/libLLVM-15.so.1\n")
    assert llvm_loaded(maps)
    maps.write_text("7f00 r-xp /usr/lib/libc.so.6\n")
    assert not llvm_loaded(maps)
    assert not llvm_loaded(tmp_path / "absent")
