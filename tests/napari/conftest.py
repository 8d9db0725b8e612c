"""Fixtures for the napari plugin tests: a cached sample-data folder and an artifacts folder.

They run the real napari viewer; under CI that means ``xvfb-run`` (see tests/napari/README).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# No workaround for triton and Mesa's llvmpipe here: the plugin itself keeps them apart
# (napari_xvr.napari._triton), and these tests prove it.
torch.set_num_threads(1)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "napari"


@pytest.fixture(scope="session", autouse=True)
def sample_cache(tmp_path_factory):
    """Sample data is generated once per session (or reused from $NAPARI_XVR_CACHE)."""
    if not os.environ.get("NAPARI_XVR_CACHE"):
        os.environ["NAPARI_XVR_CACHE"] = str(tmp_path_factory.mktemp("napari_xvr_cache"))
    from napari_xvr.napari._sample_data import sample_files, sample_xray_file

    sample_files()
    sample_xray_file()
    return Path(os.environ["NAPARI_XVR_CACHE"])


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def sample_viewer(make_napari_viewer):
    """A viewer with the sample CT, its labels and the synthetic X-ray opened from the plugin."""
    viewer = make_napari_viewer(show=True)  # shown: 3D screenshots of a hidden canvas are blank
    for key in ("chest_ct", "chest_labels", "chest_xray"):
        viewer.open_sample("napari-xvr", key)
    return viewer
