"""xvr's X-ray preprocessing: crop, rescale, background subtraction, linearization."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_xvr.errors import XvrInputError
from napari_xvr.io import preprocess_xray, read_xray
from napari_xvr.io.xray import crop_intrinsics


def _reference(img: np.ndarray, subtract_background: bool, linearize: bool) -> np.ndarray:
    """xvr's formulas written out in float64 numpy."""
    x = img.astype(np.float64)
    x = (x - x.min()) / (x.max() - x.min() + 1e-6)
    if subtract_background:
        values, counts = np.unique(x.astype(np.float32), return_counts=True)
        mode = values[counts == counts.max()].min()  # torch.mode picks the smallest tie
        x = np.clip(x - mode, -1, 0) + 1
    if linearize:
        x = np.log((x + 1).max()) - np.log(x + 1)
    return x


@pytest.fixture()
def image() -> np.ndarray:
    rng = np.random.default_rng(3)
    img = rng.integers(200, 3000, (30, 41)).astype(np.float32)
    img[:, :8] = 3500.0  # a flat collimator band: the mode
    return img


@pytest.mark.parametrize("subtract_background", [False, True])
@pytest.mark.parametrize("linearize", [False, True])
def test_matches_xvr_formulas(image, subtract_background, linearize):
    out = preprocess_xray(image, 0, subtract_background, linearize)
    assert out.shape == (1, 1, 30, 41) and out.dtype == torch.float32
    np.testing.assert_allclose(
        out[0, 0].numpy(), _reference(image, subtract_background, linearize), atol=2e-6
    )


def test_rescale_range_and_background(image):
    plain = preprocess_xray(image)[0, 0]
    assert float(plain.min()) == 0.0 and 0.9999 < float(plain.max()) <= 1.0
    flat = preprocess_xray(image, subtract_background=True)[0, 0]
    assert torch.all(flat[:, :8] == 1.0) and float(flat.max()) == 1.0  # background -> 1
    linear = preprocess_xray(image, linearize=True)[0, 0]
    assert float(linear.min()) == 0.0 and torch.argmin(linear) == torch.argmax(plain)


@pytest.mark.parametrize("crop", [1, 2, 3, 6, 7])
def test_crop_as_torchvision_center_crop(image, crop):
    from torchvision.transforms.functional import center_crop

    tensor = torch.as_tensor(image)[None, None]
    expected = center_crop(tensor, [30 - crop, 41 - crop])
    out = preprocess_xray(image, crop)
    assert out.shape[-2:] == (30 - crop, 41 - crop)
    np.testing.assert_allclose(out.numpy(), preprocess_xray(expected[0, 0].numpy()).numpy(), atol=1e-7)


def test_crop_intrinsics_and_bounds(xray_dicom, image):
    intr = read_xray(xray_dicom).intrinsics
    cropped = crop_intrinsics(intr, 10)
    assert (cropped.height, cropped.width, cropped.delx, cropped.sdd) == (30, 40, intr.delx, intr.sdd)
    assert crop_intrinsics(intr, 0) == intr
    with pytest.raises(XvrInputError, match=r"--crop 29: this .* px X-ray allows 0 to 28 pixels"):
        preprocess_xray(image, 29)
    with pytest.raises(XvrInputError, match="expected a 2D image"):
        preprocess_xray(np.zeros((2, 3, 4, 5), np.float32))


@pytest.mark.parametrize("reducefn", ["max", "sum", 1])
def test_multiframe_follows_xvr_order(multiframe_dicom, reducefn):
    """xvr preprocesses the (F, H, W) stack as one image and reduces the frames afterwards."""
    xray = read_xray(multiframe_dicom, reducefn)
    out = xray.preprocessed(crop=4, subtract_background=False, linearize=True)
    stack = torch.as_tensor(xray.frames[:, 2:-2, 2:-2], dtype=torch.float64)
    stack = (stack - stack.min()) / (stack.max() - stack.min() + 1e-6)
    stack = (stack + 1).max().log() - (stack + 1).log()
    expected = {"max": stack.amax(0), "sum": stack.sum(0), 1: stack[1]}[reducefn]
    assert out.shape == (1, 1, 36, 46)
    np.testing.assert_allclose(out[0, 0].numpy(), expected.numpy(), atol=1e-5)
    # a single-frame X-ray preprocesses its image
    single = read_xray(multiframe_dicom, 0)
    single.frames = None
    np.testing.assert_array_equal(
        single.preprocessed(linearize=True).numpy(), preprocess_xray(single.image, linearize=True).numpy()
    )


def test_soft_equalize_is_a_monotone_cdf(image):
    from napari_xvr.register.optimiser.similarity import soft_equalize

    img = preprocess_xray(image)
    eq = soft_equalize(img)
    assert eq.shape == img.shape and float(eq.min()) >= 0.0 and float(eq.max()) <= 1.0
    order = torch.argsort(img.flatten())
    values = eq.flatten()[order]
    assert torch.all(values[1:] - values[:-1] >= -1e-6)  # rank preserving
    assert abs(float(eq.mean()) - 0.5) < 0.1  # roughly uniform histogram
