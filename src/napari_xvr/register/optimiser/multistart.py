"""Starting poses for a multi-start first scale: the given pose plus a fixed spread around it.

Levenberg-Marquardt climbs the nearest hill of the similarity, so from a start more than
~15 deg / 50 mm off it can stop on the wrong one.  Running the coarsest scale from several
starts and keeping the one with the highest similarity widens the capture range at the cost
of one coarse scale per start.
"""

from __future__ import annotations

import numpy as np
import torch
from diffdrr.pose import RigidTransform

from ...geometry import pose_from_zxy, pose_to_zxy


def spread_offsets(n: int, seed: int = 0) -> np.ndarray:
    """`n` offsets in [-1, 1]^6, evenly filling the box (scrambled Sobol points, fixed seed)."""
    if n <= 0:
        return np.zeros((0, 6))
    engine = torch.quasirandom.SobolEngine(6, scramble=True, seed=seed)
    return engine.draw(n, dtype=torch.float64).numpy() * 2 - 1


def start_poses(
    start: RigidTransform, n_more: int, rot_deg: float, xyz_mm: float, seed: int = 0
) -> list[RigidTransform]:
    """`start` first, then `n_more` poses offset by up to `rot_deg` per ZXY angle and
    `xyz_mm` per translation axis (the same offsets for every X-ray: runs are reproducible)."""
    rot, xyz = pose_to_zxy(start)
    device, dtype = start.matrix.device, start.matrix.dtype
    poses = [start]
    for offset in spread_offsets(n_more, seed):
        poses.append(
            pose_from_zxy(rot + rot_deg * offset[:3], xyz + xyz_mm * offset[3:], dtype=dtype, device=device)
        )
    return poses
