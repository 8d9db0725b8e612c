"""How sure a registration is: a covariance of the six pose parameters and the errors it predicts.

At the optimum the optimiser already has the Gauss-Newton Hessian ``H = J^T J`` of
``1 - similarity`` (:mod:`.optimiser.gram`), in which inner products are means over pixels. With
``sigma^2 = 2 (1 - similarity)`` the mean squared normalised residual, and ``N`` independent
residual samples, the least-squares covariance of the parameters is ``sigma^2 / N * H^-1``.
Neighbouring pixels of a DRR are not independent: ``N = pixels / KAPPA``, where `KAPPA` (pixels
per independent sample) is calibrated on generated cases (``python -m benchmarks.trust``).

From the covariance, poses are sampled and measured with the core's own metrics: the predicted
mTRE (xvr's definition, :func:`napari_xvr.evaluate.mtre`) over a grid spanning the volume, and
the spread of the volume centre along the central ray (depth, which one view pins worst) and
across it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from diffdrr.pose import RigidTransform, convert

KAPPA = 16.0
"""Pixels per independent residual sample (calibrated; see the module docstring)."""

DEGENERATE = 1e10
"""Condition number of the (scale-normalised) Hessian above which the pose is undetermined."""


@dataclass(frozen=True)
class Uncertainty:
    """Predicted errors of one registration (1 standard deviation unless named otherwise)."""

    predicted_mtre_mm: float  # expected mTRE over the volume grid
    depth_sd_mm: float  # the volume centre along the central ray
    inplane_sd_mm: float  # the volume centre across the ray (both axes together)
    rotation_sd_deg: tuple[float, ...]  # (3,)
    translation_sd_mm: tuple[float, ...]  # (3,)
    condition: float  # of the Hessian with its diagonal scaled to 1
    similarity: float
    pixels: int
    kappa: float = KAPPA
    covariance: tuple | None = None  # 6x6 of (rad, mm): `convention` Euler angles, translation
    convention: str = "ZXY"

    @property
    def degenerate(self) -> bool:
        return not self.condition < DEGENERATE

    def to_json(self) -> dict:
        def number(x):
            return float(x) if math.isfinite(x) else None

        return {
            "predicted_mtre_mm": number(self.predicted_mtre_mm),
            "depth_sd_mm": number(self.depth_sd_mm),
            "inplane_sd_mm": number(self.inplane_sd_mm),
            "rotation_sd_deg": [number(v) for v in self.rotation_sd_deg],
            "translation_sd_mm": [number(v) for v in self.translation_sd_mm],
            "condition": number(self.condition),
            "similarity": number(self.similarity),
            "pixels": int(self.pixels),
            "kappa": self.kappa,
            "covariance": None
            if self.covariance is None
            else [[float(v) for v in row] for row in self.covariance],
            "convention": self.convention,
            "covariance_parameters": f"{self.convention} Euler angles (rad) and translation (mm) "
            "of diffdrr.pose.convert at the final pose",
        }


def volume_points(drr, n: int = 3, inset: float = 0.25) -> np.ndarray:
    """(n^3, 3) world points (mm) on a grid spanning the inner half of the rendered volume along
    each axis (where the anatomy is; the corners of a CT box are mostly air)."""
    volume = drr.subject.volume
    shape = np.asarray(volume.shape[1:], dtype=np.float64)
    axes = [np.linspace(inset * (s - 1), (1 - inset) * (s - 1), n) for s in shape]
    ijk = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    affine = np.asarray(volume.affine, dtype=np.float64)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def pose_uncertainty(
    hessian,
    similarity: float,
    pixels: int,
    pose: RigidTransform,
    points: np.ndarray,
    orientation: str = "AP",
    convention: str = "ZXY",
    kappa: float = KAPPA,
    n_samples: int = 256,
    seed: int = 0,
) -> Uncertainty:
    """The uncertainty of `pose` from the Hessian of ``1 - similarity`` in (rad, mm) of
    ``convert(rot, xyz, 'euler_angles', convention)`` at the optimum."""
    from ...geometry import reorient_matrix

    h = torch.as_tensor(hessian, dtype=torch.float64).cpu()
    h = 0.5 * (h + h.T)
    scale = h.diagonal().clamp_min(1e-300).sqrt()
    normalised = h / (scale[:, None] * scale[None, :])
    eig = torch.linalg.eigvalsh(normalised)
    condition = float(eig.max() / eig.min()) if float(eig.min()) > 0 else math.inf
    sigma2 = 2.0 * max(1.0 - float(similarity), 1e-6)
    n_eff = max(float(pixels) / kappa, 1.0)
    nan3 = (math.nan,) * 3
    if not math.isfinite(condition) or not math.isfinite(sigma2):
        return Uncertainty(math.inf, math.inf, math.inf, nan3, nan3, condition, similarity, pixels, kappa)
    cov = sigma2 / n_eff * torch.linalg.inv(normalised) / (scale[:, None] * scale[None, :])
    cov = 0.5 * (cov + cov.T)
    sd = cov.diagonal().clamp_min(0).sqrt()
    base = RigidTransform(pose.matrix.detach().cpu().double())
    poses = sample_poses(base, cov, convention, n_samples, seed)
    errors = batched_mtre(base, poses, points)
    # the volume centre in the camera frame (as evaluate.project sees it): z is along the ray
    reorient = RigidTransform(reorient_matrix(orientation).to(torch.float64))
    mid = torch.as_tensor(np.asarray(points, dtype=np.float64).mean(axis=0))[None, None]
    cam = reorient.compose(poses).inverse()(mid.expand(n_samples, 1, 3))[:, 0]
    spread = cam.std(dim=0)
    return Uncertainty(
        predicted_mtre_mm=float(np.mean(errors)),
        depth_sd_mm=float(spread[2]),
        inplane_sd_mm=float(spread[:2].norm()),
        rotation_sd_deg=tuple(float(v) for v in torch.rad2deg(sd[:3])),
        translation_sd_mm=tuple(float(v) for v in sd[3:]),
        condition=condition,
        similarity=float(similarity),
        pixels=int(pixels),
        kappa=kappa,
        covariance=tuple(tuple(float(v) for v in row) for row in cov.tolist()),
        convention=convention,
    )


def sample_poses(
    base: RigidTransform, covariance, convention: str = "ZXY", n_samples: int = 256, seed: int = 0
) -> RigidTransform:
    """`n_samples` poses drawn around `base` from a 6x6 `covariance` of its (rad, mm)
    ``convert(rot, xyz, 'euler_angles', convention)`` parameters (a fixed seed: repeatable)."""
    rot, xyz = base.convert("euler_angles", convention)
    centre = torch.cat([rot[0], xyz[0]])
    cov = torch.as_tensor(covariance, dtype=torch.float64)
    chol = torch.linalg.cholesky(cov + 1e-18 * torch.eye(6, dtype=torch.float64))
    draws = torch.randn(n_samples, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    samples = centre + draws @ chol.T
    return convert(samples[:, :3], samples[:, 3:], parameterization="euler_angles", convention=convention)


def predicted_mtre(
    pose, covariance, points, convention: str = "ZXY", n_samples: int = 256, seed: int = 0
) -> float:
    """The expected mTRE (xvr's) over `points` of a pose (4x4) known to `covariance`."""
    base = RigidTransform(torch.as_tensor(np.asarray(pose), dtype=torch.float64)[None])
    return float(
        np.mean(batched_mtre(base, sample_poses(base, covariance, convention, n_samples, seed), points))
    )


def batched_mtre(base: RigidTransform, poses: RigidTransform, points) -> np.ndarray:
    """xvr's mTRE (:func:`napari_xvr.evaluate.mtre`) of each of `poses` against `base`, in one
    batched computation: a few tensors instead of thousands (no garbage-collector pauses that
    hold the interpreter while a GUI waits)."""
    pts = torch.as_tensor(np.asarray(points, dtype=np.float64))
    ref = base(pts[None])  # (1, P, 3)
    moved = poses(pts[None].expand(poses.matrix.shape[0], -1, -1))  # (N, P, 3)
    return (moved - ref).norm(dim=-1).mean(dim=1).numpy()
