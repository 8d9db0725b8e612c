"""Our similarity equals xvr's (DiffDRR's mNCC + gradient NCC), values and gradients."""

import pytest
import torch
from diffdrr.metrics import GradientNormalizedCrossCorrelation2d, MultiscaleNormalizedCrossCorrelation2d

from napari_xvr.register.similarity import Similarity, soft_equalize


@pytest.mark.parametrize("size", [24, 48])
def test_matches_diffdrr_metrics(size):
    torch.manual_seed(0)
    fixed = torch.randn(2, 1, size, size).cumsum(-1)
    moving = (fixed + 0.5 * torch.randn_like(fixed)).requires_grad_(True)
    ref = 0.3 * MultiscaleNormalizedCrossCorrelation2d([None, 7], [0.5, 0.5])(fixed, moving) + \
        0.7 * GradientNormalizedCrossCorrelation2d(7, 2.0)(fixed, moving)
    ours = Similarity(7, 2.0, 0.3)(fixed, moving)
    assert torch.allclose(ours, ref, atol=2e-4)
    (g_ref,) = torch.autograd.grad(ref.sum(), moving)
    (g_ours,) = torch.autograd.grad(ours.sum(), moving)
    assert (g_ref - g_ours).norm() / g_ref.norm() < 1e-4


def test_identical_images_score_one_and_equalize_is_monotone():
    img = torch.rand(1, 1, 32, 32).cumsum(-2)
    assert Similarity()(img, img).item() == pytest.approx(1.0, abs=1e-3)
    eq = soft_equalize(img)
    assert eq.min() >= 0 and eq.max() <= 1
    order = torch.argsort(img.flatten())
    assert (eq.flatten()[order].diff() >= -1e-6).all()
    # nearly blind to a monotone intensity curve (what makes it robust to detector processing)
    curved = soft_equalize(img**2 + 3)
    assert Similarity(patch_size=5, sigma=1.0, beta=1.0)(eq, curved).item() > 0.99
