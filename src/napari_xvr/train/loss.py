"""Training loss: weight_ncc * (1 - mNCC) + weight_geo * double geodesic + weight_dice * Dice."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffdrr.metrics import DoubleGeodesicSE3

from ..register.similarity import Similarity, standardize


@dataclass
class LossTerms:
    """Per-sample terms, each (B,)."""

    loss: torch.Tensor
    ncc: torch.Tensor
    geo: torch.Tensor
    rgeo: torch.Tensor
    tgeo: torch.Tensor
    dice: torch.Tensor


def soft_masks(channels: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Per-label line integrals (B, C, H, W) -> soft masks in [0, 1) (differentiable)."""
    return 1.0 - torch.exp(-channels.clamp(min=0) / tau)


def dice_loss(true: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """1 - mean Dice over the foreground labels present in either mask (background excluded)."""
    true, pred = true[:, 1:].flatten(2), pred[:, 1:].flatten(2)
    inter = (true * pred).sum(-1)
    total = true.sum(-1) + pred.sum(-1)
    present = total > 1e-3
    dice = (2 * inter) / total.clamp(min=1e-6)
    n = present.sum(-1)
    mean = (dice * present).sum(-1) / n.clamp(min=1)
    return torch.where(n > 0, 1.0 - mean, torch.zeros_like(mean))


class PoseRegressionLoss(torch.nn.Module):
    """xvr's training objective (image similarity as the registration engine measures it)."""

    def __init__(self, sdd: float, weight_ncc=1.0, weight_geo=0.01, weight_dice=1.0):
        super().__init__()
        self.similarity = Similarity()
        self.geodesic = DoubleGeodesicSE3(sdd)
        self.weight_ncc, self.weight_geo, self.weight_dice = weight_ncc, weight_geo, weight_dice

    def forward(self, img, pose, pred_img, pred_pose, mask=None, pred_mask=None) -> LossTerms:
        size = tuple(img.shape[-2:])
        ncc = self.similarity(standardize(img, size), standardize(pred_img, size))
        rgeo, tgeo, geo = self.geodesic(pose, pred_pose)
        if mask is not None and pred_mask is not None:
            dice = dice_loss(mask, pred_mask)
        else:
            dice = torch.zeros_like(ncc)
        loss = self.weight_ncc * (1 - ncc) + self.weight_geo * geo + self.weight_dice * dice
        return LossTerms(loss, ncc, geo, rgeo, tgeo, dice)
