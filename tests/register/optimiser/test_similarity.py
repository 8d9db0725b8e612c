"""Our similarity equals xvr's (DiffDRR's mNCC + gradient NCC), values and gradients."""

import pytest
import torch
from diffdrr.metrics import GradientNormalizedCrossCorrelation2d, MultiscaleNormalizedCrossCorrelation2d

from napari_xvr.register.optimiser.similarity import Similarity, soft_equalize


@pytest.mark.parametrize("size", [24, 48])
def test_matches_diffdrr_metrics(size):
    torch.manual_seed(0)
    fixed = torch.randn(2, 1, size, size).cumsum(-1)
    moving = (fixed + 0.5 * torch.randn_like(fixed)).requires_grad_(True)
    ref = 0.3 * MultiscaleNormalizedCrossCorrelation2d([None, 7], [0.5, 0.5])(
        fixed, moving
    ) + 0.7 * GradientNormalizedCrossCorrelation2d(7, 2.0)(fixed, moving)
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

    from napari_xvr.register.optimiser.gram import similarity_gram
    from napari_xvr.register.optimiser.similarity import Similarity

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


@pytest.mark.parametrize(
    ("height", "width", "sigma"), [(128, 128, 5.0), (37, 52, 5.0), (20, 24, 2.0), (16, 16, 0.0)]
)
def test_the_matrix_sobel_is_diffdrrs_blur_and_sobel(height, width, sigma):
    """The same linear map as torchvision's reflect-padded Gaussian blur then DiffDRR's 3x3
    Sobel filters: to float64 rounding in double, to float32 rounding against DiffDRR itself."""
    from diffdrr.metrics import Sobel as DiffDRRSobel
    from torch.nn.functional import conv2d
    from torchvision.transforms.functional import gaussian_blur

    from napari_xvr.register.optimiser.sobel import Sobel

    torch.manual_seed(1)
    img = torch.rand(3, 1, height, width, dtype=torch.float64).cumsum(-1).cumsum(-2)
    theirs = DiffDRRSobel(sigma)
    blurred = gaussian_blur(img, int(6 * sigma + 1) | 1, sigma) if sigma > 0 else img
    exact = conv2d(blurred, theirs.filter.weight.to(torch.float64), padding=1)
    ours = Sobel(sigma)(img)
    assert ours.shape == exact.shape == (3, 2, height, width)
    assert ((ours - exact).abs().max() / exact.abs().max()).item() < 1e-12

    single = img.float().requires_grad_(True)
    reference = theirs(single)
    mine = Sobel(sigma)(single)
    assert ((mine - reference).abs().max() / reference.abs().max()).item() < 1e-5
    weights = torch.randn_like(reference)
    (g_ref,) = torch.autograd.grad((reference * weights).sum(), single)
    (g_ours,) = torch.autograd.grad((mine * weights).sum(), single)
    assert ((g_ours - g_ref).norm() / g_ref.norm()).item() < 1e-5


def test_the_matrix_sobel_takes_images_smaller_than_its_blur():
    """Reflect padding wider than the image (which torch's padding refuses) keeps reflecting."""
    from napari_xvr.register.optimiser.sobel import Sobel, _mirror

    assert _mirror(torch.arange(-6, 10), 4).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    flat = Sobel(5.0)(torch.full((1, 1, 6, 5), 2.0))
    assert flat.shape == (1, 2, 6, 5) and torch.isfinite(flat).all()
    with pytest.raises(ValueError, match="batch, 1, height, width"):
        Sobel(5.0)(torch.zeros(2, 3, 8, 8))
