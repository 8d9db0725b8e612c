"""Fixtures for training tests: the 4x4x2 chest CT with its labelmap (on the CT's own grid)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def train_volume(example_volume):
    """(ct, mask): `napari_xvr.synthetic.example_volume` keeps both on one grid."""
    return example_volume
