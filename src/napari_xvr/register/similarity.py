"""Image similarity for registration: xvr's mNCC + gradient-NCC blend, and optional equalization."""

from __future__ import annotations

import torch
from diffdrr.metrics import (
    GradientNormalizedCrossCorrelation2d,
    MultiscaleNormalizedCrossCorrelation2d,
)
from torch.nn.functional import interpolate


class Similarity(torch.nn.Module):
    """beta * mNCC(global + patches) + (1 - beta) * gradient-NCC(patches), higher is better."""

    def __init__(self, patch_size: int = 9, sigma: float = 5.0, beta: float = 0.5):
        super().__init__()
        self.beta = beta
        self.mncc = MultiscaleNormalizedCrossCorrelation2d([None, patch_size], [0.5, 0.5])
        self.gncc = GradientNormalizedCrossCorrelation2d(patch_size, sigma)

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        return self.beta * self.mncc(fixed, moving) + (1 - self.beta) * self.gncc(fixed, moving)


def standardize(img: torch.Tensor, size: tuple[int, int] | None = None, mean=0.15, std=0.1):
    """xvr's X-ray/DRR transform: per-image min-max, optional resize, then (x - mean) / std."""
    lo = img.amin(dim=(-1, -2), keepdim=True)
    hi = img.amax(dim=(-1, -2), keepdim=True)
    img = (img - lo) / (hi - lo + 1e-6)
    if size is not None and tuple(img.shape[-2:]) != tuple(size):
        img = interpolate(img, size=size, mode="bilinear", antialias=True, align_corners=False)
    return (img - mean) / std


def soft_equalize(img: torch.Tensor, n_bins: int = 64, temperature: float = 0.02) -> torch.Tensor:
    """Differentiable histogram equalization: each pixel -> its smoothed rank (CDF) in [0, 1]."""
    flat = img.flatten(1)
    lo = flat.amin(dim=1, keepdim=True).detach()
    hi = flat.amax(dim=1, keepdim=True).detach()
    x = (flat - lo) / (hi - lo + 1e-6)
    qs = torch.quantile(x.detach(), torch.linspace(0, 1, n_bins, device=img.device, dtype=img.dtype), dim=1).T
    cdf = torch.sigmoid((x.unsqueeze(-1) - qs.unsqueeze(1)) / temperature).mean(dim=-1)
    return cdf.view_as(img)
