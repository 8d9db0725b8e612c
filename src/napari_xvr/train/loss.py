"""Training loss: weight_ncc * (1 - mNCC) + weight_geo * double geodesic + weight_dice * Dice
+ weight_haus * Hausdorff (the last two need labelmaps)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffdrr.metrics import DoubleGeodesicSE3

from ..register.optimiser.similarity import Similarity, standardize


@dataclass
class LossTerms:
    """Per-sample terms, each (B,)."""

    loss: torch.Tensor
    ncc: torch.Tensor
    geo: torch.Tensor
    rgeo: torch.Tensor
    tgeo: torch.Tensor
    dice: torch.Tensor
    haus: torch.Tensor


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


_SQRT2 = 2.0**0.5
#: 3x3 chamfer step lengths (diagonal sqrt 2, edge 1, centre 0), row-major like F.unfold
_CHAMFER = torch.tensor([_SQRT2, 1.0, _SQRT2, 1.0, 0.0, 1.0, _SQRT2, 1.0, _SQRT2])


@torch.no_grad()
def chamfer_distance(region: torch.Tensor, max_distance: int = 10) -> torch.Tensor:
    """Chamfer (1, sqrt 2) distance in pixels from each pixel to the nearest pixel of `region`.

    `region` is (N, 1, H, W) boolean.  Distances grow by relaxing a 3x3 neighbourhood
    `max_distance` times, so they are exact chamfer distances up to that radius and capped at it
    beyond (also where `region` is empty).
    """
    cap = float(max_distance)
    dist = torch.where(region, 0.0, cap).to(torch.float32)
    n, _, h, w = dist.shape
    steps = _CHAMFER.to(dist.device).view(1, 9, 1)
    for _ in range(int(max_distance)):
        padded = F.pad(dist, (1, 1, 1, 1), mode="constant", value=cap)
        relaxed = (F.unfold(padded, 3) + steps).amin(dim=1).view(n, 1, h, w)
        relaxed = relaxed.clamp(max=cap)
        if torch.equal(relaxed, dist):
            break
        dist = relaxed
    return dist


def hausdorff_loss(
    true: torch.Tensor, pred: torch.Tensor, alpha: float = 2.0, max_distance: int = 10
) -> torch.Tensor:
    """Differentiable Hausdorff-distance loss between soft masks (B, C, H, W) -> (B,).

    Distance-transform form of Karimi & Salcudean (2019): each pixel's squared disagreement
    ``(pred - true)^2`` is weighted by how far it lies from the true mask plus how far it lies
    from the predicted mask (chamfer distances of the masks at 0.5, held constant), so
    foreground predicted far from the true region, or true foreground far from the predicted
    region, dominates, as the Hausdorff distance does.  Background (channel 0) is excluded; the
    loss is the mean over the foreground channels present in either mask (0 when none is).
    """
    true, pred = true[:, 1:].float(), pred[:, 1:].float()
    b, c, h, w = true.shape
    if c == 0:
        return true.new_zeros(b)
    flat_true, flat_pred = true.reshape(b * c, 1, h, w), pred.reshape(b * c, 1, h, w)
    to_true = chamfer_distance(flat_true > 0.5, max_distance)
    to_pred = chamfer_distance(flat_pred.detach() > 0.5, max_distance)
    weight = to_true**alpha + to_pred**alpha
    per_channel = ((flat_pred - flat_true) ** 2 * weight).flatten(1).mean(1).view(b, c)
    present = (true.flatten(2).amax(-1) > 0.5) | (pred.detach().flatten(2).amax(-1) > 0.5)
    n = present.sum(-1)
    return (per_channel * present).sum(-1) / n.clamp(min=1)


class PoseRegressionLoss(torch.nn.Module):
    """xvr's training objective (image similarity as the registration engine measures it)."""

    def __init__(
        self,
        sdd: float,
        weight_ncc: float = 1.0,
        weight_geo: float = 0.01,
        weight_dice: float = 1.0,
        weight_haus: float = 0.1,
    ):
        super().__init__()
        self.similarity = Similarity()
        self.geodesic = DoubleGeodesicSE3(sdd)
        self.weight_ncc, self.weight_geo, self.weight_dice = weight_ncc, weight_geo, weight_dice
        self.weight_haus = weight_haus

    def geodesic_only(self, pose, pred_pose) -> LossTerms:
        """``weight_geo * double geodesic`` alone (no DRRs of the predicted poses)."""
        rgeo, tgeo, geo = self.geodesic(pose, pred_pose)
        zero = torch.zeros_like(geo)
        return LossTerms(self.weight_geo * geo, zero, geo, rgeo, tgeo, zero, zero)

    def forward(self, img, pose, pred_img, pred_pose, mask=None, pred_mask=None) -> LossTerms:
        size = tuple(img.shape[-2:])
        ncc = self.similarity(standardize(img, size), standardize(pred_img, size))
        rgeo, tgeo, geo = self.geodesic(pose, pred_pose)
        dice = haus = torch.zeros_like(ncc)
        if mask is not None and pred_mask is not None:
            dice = dice_loss(mask, pred_mask)
            if self.weight_haus > 0:
                haus = hausdorff_loss(mask, pred_mask)
        loss = (
            self.weight_ncc * (1 - ncc)
            + self.weight_geo * geo
            + self.weight_dice * dice
            + self.weight_haus * haus
        )
        return LossTerms(loss, ncc, geo, rgeo, tgeo, dice, haus)
