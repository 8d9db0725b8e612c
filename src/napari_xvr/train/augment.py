"""Intensity augmentations of DRRs so a model trained on them reads real X-rays.

CLAHE, gamma, blur, noise, sharpness, inversion, erasing and a collimation crop, each applied
with a probability derived from ``p_augmentation``. Randomness comes from torch's global RNG
(checkpointed, so a restarted run draws the same augmentations).
"""

from __future__ import annotations

import torch

from ..imaging import IMAGE_AXES, unit


class Collimation(torch.nn.Module):
    """Zero a random border (up to `max_frac` of the side) per image, like a collimator."""

    def __init__(self, p: float, max_frac: float = 0.08):
        super().__init__()
        self.p, self.max_frac = p, max_frac

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        apply = torch.rand(b) < self.p
        limit = max(1, int(self.max_frac * min(h, w)))
        crops = torch.randint(0, limit + 1, (b, 4))
        if not apply.any():
            return x
        rows = torch.arange(h).view(1, h, 1)
        cols = torch.arange(w).view(1, 1, w)
        top, bottom, left, right = (crops[:, i].view(b, 1, 1) for i in range(4))
        inside = (rows >= top) & (rows < h - bottom) & (cols >= left) & (cols < w - right)
        inside = inside | ~apply.view(b, 1, 1)
        return x * inside.unsqueeze(1).to(x)


class XrayAugmentations(torch.nn.Module):
    """DRR (B, 1, H, W) -> augmented image in [0, 1]."""

    def __init__(self, p: float = 0.333):
        super().__init__()
        import kornia.augmentation as K

        self.p = float(p)
        self.ops = torch.nn.ModuleList(
            [
                K.RandomClahe(clip_limit=(2.0, 8.0), grid_size=(4, 4), p=p, keepdim=True),
                K.RandomGamma(gamma=(0.6, 1.6), p=p, keepdim=True),
                K.RandomGaussianBlur((5, 5), (0.1, 1.5), p=p, keepdim=True),
                K.RandomSharpness(sharpness=0.5, p=p, keepdim=True),
                K.RandomGaussianNoise(std=0.02, p=p, keepdim=True),
                K.RandomInvert(p=p / 5, keepdim=True),
                K.RandomErasing(scale=(0.01, 0.08), p=p, keepdim=True),
            ]
        )
        self.collimation = Collimation(p)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = unit(x.float(), IMAGE_AXES)
        if self.p <= 0:
            return x
        for op in self.ops:
            x = unit(op(x.clamp(0, 1)), IMAGE_AXES)
        return self.collimation(x)
