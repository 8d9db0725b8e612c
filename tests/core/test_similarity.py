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


def test_the_masked_similarity_is_blind_to_left_out_pixels_and_its_gram_agrees():
    """With `leave_out`, pixels outside the mask change nothing (in the value and in the
    Gauss-Newton Gram); with an all-true mask it is the plain similarity."""
    import torch

    from napari_xvr.register.gram import similarity_gram
    from napari_xvr.register.similarity import Similarity

    torch.manual_seed(0)
    base = torch.randn(1, 1, 48, 40).cumsum(-1).cumsum(-2)
    images = base + 0.5 * torch.randn(4, 1, 48, 40).cumsum(-2)
    valid = torch.ones(1, 1, 48, 40, dtype=torch.bool)
    valid[..., :12, :15] = False  # a corner of burned-in text
    sim = Similarity(9, 1.0, 0.5)
    plain = sim(images[:1], images)
    sim.leave_out(torch.ones_like(valid))
    assert torch.allclose(sim(images[:1], images), plain, atol=1e-6)
    sim.leave_out(valid)
    changed = images.clone()
    changed[..., :12, :15] = 100 * torch.rand(4, 1, 12, 15)
    # the global term sees only valid pixels; windows and gradients near the mask drop out
    assert torch.allclose(sim(changed[:1], changed), sim(images[:1], images), atol=1e-6)
    assert not torch.allclose(sim(images[:1], images), plain, atol=1e-4)
    gram = similarity_gram(sim, images)
    assert torch.allclose(gram[0].float(), sim(images[:1], images), atol=1e-5)
    sim.leave_out(None)
    assert torch.allclose(sim(images[:1], images), plain, atol=1e-7)
