"""Gram matrices of the similarity's normalised residuals, for a Gauss-Newton Hessian.

xvr's similarity is a weighted sum of normalised cross-correlations (NCC).  For one window, with
``z(x)`` the window's pixels minus their mean over their standard deviation, ``1 - NCC(a, b)`` is
``|z(a) - z(b)|^2 / 2`` (inner products taken as means), so ``1 - similarity`` is half a squared
residual norm and its Gauss-Newton Hessian is ``J^T J``.  The inner products that ``J^T J`` needs
are NCCs between renders, computed here with the same box filters as the similarity itself: no
residual vector (pixels x windows) is ever built.
"""

from __future__ import annotations

import torch

from .similarity import Similarity, exact_dtype, masked_mean, window_average


def ncc_gram(
    images: torch.Tensor, patch: int | None, eps: float = 1e-5, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """(n, n) matrix of NCCs between `images` (n, C, H, W), averaged over windows and channels.

    Entry (i, j) equals :func:`~napari_xvr.register.optimiser.similarity.local_ncc` of images i and j
    (with the same `weight`).
    """
    x = images.to(exact_dtype(images.device))
    n = x.shape[0]
    mean = masked_mean(x, patch, weight)
    inverse_std = ((masked_mean(x * x, patch, weight) - mean * mean).clamp_min(0) + eps).rsqrt()
    gram = x.new_zeros(n, n)
    for i in range(n):  # row i from image i and the images after it (no gathered copies)
        cov = masked_mean(x[i : i + 1] * x[i:], patch, weight) - mean[i : i + 1] * mean[i:]
        ncc = window_average(
            cov * (inverse_std[i : i + 1] * inverse_std[i:]), None if patch is None else weight
        )
        gram[i, i:] = ncc
        gram[i:, i] = ncc
    return gram


def similarity_gram(similarity: Similarity, images: torch.Tensor) -> torch.Tensor:
    """(n, n): ``similarity`` between every pair of prepared images (n, 1, H, W)."""
    beta, patch, w = similarity.beta, similarity.patch_size, similarity.weight
    gram = (
        0.5
        * beta
        * (ncc_gram(images, None, weight=w("pixels")) + ncc_gram(images, patch, weight=w("windows")))
    )
    if beta < 1:
        gram = gram + (1 - beta) * ncc_gram(similarity.sobel(images), patch, weight=w("gradients"))
    return gram


def gauss_newton_hessian(gram: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """``J^T J`` (k, k) from the Gram matrix of [centre, centre + steps[0] e_0, ...] renders.

    Column k of J is the finite difference (z(p + h_k e_k) - z(p)) / h_k, so
    ``(J^T J)_kl = (G_kl - G_k0 - G_0l + G_00) / (h_k h_l)``.
    """
    g = gram.detach().cpu().to(torch.float64)  # a 7x7 matrix: solved on the CPU in double
    inner = g[1:, 1:] - g[1:, :1] - g[:1, 1:] + g[0, 0]
    h = steps.detach().cpu().to(torch.float64)
    return inner / (h[:, None] * h[None, :])
