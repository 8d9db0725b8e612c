"""Fixtures for training tests: the 4x4x2 chest CT with its mask on the CT's own grid."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def train_volume(example_volume, tmp_path_factory):
    """(ct, mask): the mask resampled (nearest) onto the CT grid so read_volume accepts it."""
    import SimpleITK as sitk

    ct, mask = example_volume
    out = tmp_path_factory.mktemp("train_volume") / "mask_on_ct_grid.nii.gz"
    ref, lab = sitk.ReadImage(str(ct)), sitk.ReadImage(str(mask))
    sitk.WriteImage(sitk.Resample(lab, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                  lab.GetPixelID()), str(out))
    return ct, out
