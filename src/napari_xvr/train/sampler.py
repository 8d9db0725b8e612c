"""Random C-arm poses in the given ranges (angles wrap to [-180, 180))."""

from __future__ import annotations

import torch
from diffdrr.pose import RigidTransform

from ..geometry import pose_from_zxy


def _uniform(lo: float, hi: float, n: int, generator=None, wrap: bool = False) -> torch.Tensor:
    x = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
    if wrap:
        x = torch.remainder(x + 180.0, 360.0) - 180.0
    return x


def _span(pair) -> tuple[float, float]:
    lo, hi = pair
    return float(lo), float(hi)


def sample_params(ranges: dict, n: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 3) ZXY angles in degrees and (n, 3) translations in mm, uniform in `ranges`."""
    rot = torch.stack([_uniform(*_span(ranges[k]), n, generator, wrap=True) for k in ("r1", "r2", "r3")], 1)
    xyz = torch.stack([_uniform(*_span(ranges[k]), n, generator) for k in ("tx", "ty", "tz")], 1)
    return rot, xyz


def random_poses(ranges: dict, n: int, generator=None, device=None) -> RigidTransform:
    """A batch of `n` poses (camera -> world) as :func:`napari_xvr.geometry.pose_from_zxy` builds."""
    rot, xyz = sample_params(ranges, n, generator)
    return pose_from_zxy(rot.numpy(), xyz.numpy(), device=device)


def prior_centre(ranges: dict) -> RigidTransform:
    """The centre of the sampling box: the pose a model knows before any training."""
    rot = [(ranges[k][0] + ranges[k][1]) / 2 for k in ("r1", "r2", "r3")]
    xyz = [(ranges[k][0] + ranges[k][1]) / 2 for k in ("tx", "ty", "tz")]
    return pose_from_zxy(rot, xyz)
