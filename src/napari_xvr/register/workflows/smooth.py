"""A tracked sequence smoothed: every frame's pose fused with its neighbours' (offline).

Each tracked frame's pose comes with a covariance (:mod:`.checks.uncertainty`: how well that one
frame pins the pose). The motion of a patient or a C-arm between frames is smooth, so the
frames inform each other: a Rauch-Tung-Striebel smoother over the six pose parameters
(``convention`` Euler angles in rad and translation in mm, as ``diffdrr.pose.convert`` gives
them), with a constant-velocity motion model whose random accelerations have one variance for
the three angles and one for the three translations. Those two variances are not tuned: they
are the maximum-likelihood values for the sequence itself (the Kalman filter's innovation
likelihood, on a grid of powers of ten refined to a tenth of a decade). The result is the
posterior mean pose and covariance of every frame given all frames.

Frames without a usable covariance (not finite, or their verdict ``failed``) are not
measurements: their smoothed pose comes from the frames around them. The raw per-frame poses
are never changed; ``xvr track`` writes the smoothed ones beside them (``poses_smoothed.csv``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from diffdrr.pose import RigidTransform, convert

from ..checks.uncertainty import batched_mtre, predicted_mtre

MIN_FRAMES = 3
"""Fewer measured frames than this are not smoothed (nothing to estimate the motion from)."""

GRID_ROT = 10.0 ** np.arange(-16.0, 0.5, 1.0)  # rad^2 / frame^3
GRID_XYZ = 10.0 ** np.arange(-10.0, 4.5, 1.0)  # mm^2 / frame^3
_PRIOR_SD = np.array([1.0] * 3 + [100.0] * 3 + [0.1] * 3 + [20.0] * 3)
"""The first state's spread (angle rad, translation mm, then per frame): far wider than any
frame's covariance, so the first measured frame sets the start."""


@dataclass(frozen=True)
class SmoothedTrack:
    """Every frame's smoothed pose (camera to world, 4x4) and its 6x6 covariance."""

    frames: list[int]
    poses: np.ndarray  # (n, 4, 4)
    covariances: np.ndarray  # (n, 6, 6), (rad, mm) of `convention` Euler angles, translation
    measured: list[bool]  # False: the frame's own pose did not enter (no usable covariance)
    process_noise: tuple[float, float]  # acceleration variances: rad^2 and mm^2 per frame^3
    log_likelihood: float
    convention: str = "ZXY"
    predicted_mtre_mm: list | None = None  # per frame, from its smoothed covariance
    shift_mm: list | None = None  # per frame, xvr's mTRE between its own and its smoothed pose

    def summary(self, short: bool = False) -> str:
        """'predicted mTRE median 0.41 (max 0.62) mm, frames moved up to 0.35 mm' (`short`:
        'predicted mTRE 0.41 mm', the median)."""
        if not self.predicted_mtre_mm:
            return f"{sum(self.measured)} of {len(self.frames)} frames smoothed"
        predicted, shift = np.asarray(self.predicted_mtre_mm), np.asarray(self.shift_mm)
        if short:
            return f"predicted mTRE {np.median(predicted):.2f} mm"
        return (
            f"predicted mTRE median {np.median(predicted):.2f} (max {predicted.max():.2f}) "
            f"mm, frames moved up to {shift.max():.2f} mm"
        )

    def to_json(self) -> dict:
        return {
            "model": "constant velocity, Rauch-Tung-Striebel smoother",
            "parameters": f"{self.convention} Euler angles (rad), translation (mm)",
            "process_noise_rad2": self.process_noise[0],
            "process_noise_mm2": self.process_noise[1],
            "log_likelihood": self.log_likelihood,
            "measured_frames": int(sum(self.measured)),
            "frames": len(self.frames),
        }


def pose_parameters(poses: np.ndarray, convention: str = "ZXY") -> np.ndarray:
    """(n, 6) Euler angles (rad) and translations (mm) of (n, 4, 4) poses; the angles unwrapped
    along the sequence (no 2 pi jumps between frames)."""
    rot, xyz = RigidTransform(torch.as_tensor(np.asarray(poses), dtype=torch.float64)).convert(
        "euler_angles", convention
    )
    return np.concatenate([np.unwrap(rot.numpy(), axis=0), xyz.numpy()], axis=1)


def pose_matrices(params: np.ndarray, convention: str = "ZXY") -> np.ndarray:
    """The inverse of :func:`pose_parameters`: (n, 4, 4) poses of (n, 6) parameters."""
    p = torch.as_tensor(np.asarray(params), dtype=torch.float64)
    return convert(p[:, :3], p[:, 3:], parameterization="euler_angles", convention=convention).matrix.numpy()


def _motion(dt: float, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Transition and process covariance over `dt` frames for acceleration variances `q`
    (..., 6): white acceleration, the state (parameters, their rates)."""
    eye = np.eye(6)
    transition = np.block([[eye, dt * eye], [np.zeros((6, 6)), eye]])
    qd = q[..., :, None] * eye  # (..., 6, 6)
    noise = np.concatenate(
        [
            np.concatenate([qd * dt**3 / 3, qd * dt**2 / 2], axis=-1),
            np.concatenate([qd * dt**2 / 2, qd * dt], axis=-1),
        ],
        axis=-2,
    )
    return transition, noise


def kalman(
    times: np.ndarray, z: np.ndarray, r: np.ndarray, measured: np.ndarray, q: np.ndarray, keep: bool = False
):
    """Constant-velocity Kalman filter of measurements `z` (n, 6) with covariances `r`
    (n, 6, 6) at frame `times` (n,), for a batch of acceleration variances `q` (b, 6).
    Returns the log-likelihood of the measurements after the first (b,), and with `keep` the
    filtered and predicted states and covariances for :func:`rts`."""
    b = q.shape[0]
    first = int(np.argmax(measured))
    x = np.zeros((b, 12))
    x[:, :6] = z[first]
    p = np.broadcast_to(np.diag(_PRIOR_SD**2), (b, 12, 12)).copy()
    loglik = np.zeros(b)
    history = []
    for t in range(len(times)):
        if t > 0:
            transition, noise = _motion(float(times[t] - times[t - 1]), q)
            x = x @ transition.T
            p = transition @ p @ transition.T + noise
        predicted = (x.copy(), p.copy())
        if measured[t]:
            s = p[:, :6, :6] + r[t]
            v = z[t] - x[:, :6]
            solved = np.linalg.solve(s, np.concatenate([p[:, :6, :], v[..., None]], axis=-1))
            gain = solved[..., :12].transpose(0, 2, 1)  # P H^T S^-1 (S symmetric)
            if t > first:
                loglik -= 0.5 * (
                    np.linalg.slogdet(s)[1]
                    + np.einsum("bi,bi->b", v, solved[..., 12])
                    + 6 * np.log(2 * np.pi)
                )
            x = x + np.einsum("bij,bj->bi", gain, v)
            joseph = np.eye(12) - gain @ np.eye(6, 12)
            p = joseph @ p @ joseph.transpose(0, 2, 1) + gain @ r[t] @ gain.transpose(0, 2, 1)
            p = 0.5 * (p + p.transpose(0, 2, 1))
        if keep:
            history.append((predicted, (x.copy(), p.copy())))
    return (loglik, history) if keep else loglik


def rts(times: np.ndarray, history: list, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Rauch-Tung-Striebel backward pass over :func:`kalman`'s `history` (batch of one):
    smoothed states (n, 12) and covariances (n, 12, 12)."""
    n = len(history)
    xs, ps = np.zeros((n, 12)), np.zeros((n, 12, 12))
    xs[-1], ps[-1] = history[-1][1][0][0], history[-1][1][1][0]
    for t in range(n - 2, -1, -1):
        transition, _ = _motion(float(times[t + 1] - times[t]), q)
        (xp, pp), (xf, pf) = history[t + 1][0], history[t][1]
        gain = np.linalg.solve(pp[0], transition @ pf[0]).T  # Pf F^T Pp^-1 (Pp symmetric)
        xs[t] = xf[0] + gain @ (xs[t + 1] - xp[0])
        ps[t] = pf[0] + gain @ (ps[t + 1] - pp[0]) @ gain.T
        ps[t] = 0.5 * (ps[t] + ps[t].T)
    return xs, ps


def _noise(qr, qt) -> np.ndarray:
    qr, qt = np.broadcast_arrays(np.asarray(qr, float).ravel(), np.asarray(qt, float).ravel())
    return np.concatenate([np.repeat(qr[:, None], 3, 1), np.repeat(qt[:, None], 3, 1)], axis=1)


def most_likely_noise(times, z, r, measured) -> tuple[float, float, float]:
    """The maximum-likelihood acceleration variances (rad^2, mm^2) and the log-likelihood: the
    grid of powers of ten, then a tenth of a decade around its best."""
    qr, qt = np.meshgrid(GRID_ROT, GRID_XYZ, indexing="ij")
    loglik = kalman(times, z, r, measured, _noise(qr, qt))
    best = int(np.nanargmax(loglik))
    fine = np.arange(-1.0, 1.05, 0.1)
    qr, qt = np.meshgrid(qr.ravel()[best] * 10**fine, qt.ravel()[best] * 10**fine, indexing="ij")
    loglik = kalman(times, z, r, measured, _noise(qr, qt))
    best = int(np.nanargmax(loglik))
    return float(qr.ravel()[best]), float(qt.ravel()[best]), float(loglik[best])


def smooth_track(frames, poses, covariances, convention: str = "ZXY") -> SmoothedTrack | None:
    """Smooth a tracked sequence: `frames` (n frame indices, increasing), their `poses`
    (n, 4, 4) and per-frame `covariances` (each 6x6 in (rad, mm) of `convention` Euler angles and
    translation at that pose, or None where the frame's pose is not to be used). None when
    fewer than :data:`MIN_FRAMES` frames are usable."""
    times = np.asarray(frames, dtype=np.float64)
    if len(times) > 1 and not np.all(np.diff(times) > 0):
        raise ValueError("smooth_track: frames must be increasing")
    z = pose_parameters(np.asarray(poses, dtype=np.float64), convention)
    r = np.zeros((len(times), 6, 6))
    measured = np.zeros(len(times), dtype=bool)
    for i, cov in enumerate(covariances):
        if cov is None:
            continue
        cov = np.asarray(cov, dtype=np.float64)
        if (
            cov.shape == (6, 6)
            and np.all(np.isfinite(cov))
            and np.all(np.linalg.eigvalsh(0.5 * (cov + cov.T)) > 0)
        ):
            r[i], measured[i] = 0.5 * (cov + cov.T), True
    if measured.sum() < MIN_FRAMES:
        return None
    qr, qt, loglik = most_likely_noise(times, z, r, measured)
    q = _noise(qr, qt)
    _, history = kalman(times, z, r, measured, q, keep=True)
    xs, ps = rts(times, history, q)
    return SmoothedTrack(
        [int(f) for f in frames],
        pose_matrices(xs[:, :6], convention),
        ps[:, :6, :6],
        measured.tolist(),
        (qr, qt),
        loglik,
        convention,
    )


def frame_covariance(result):
    """A tracked frame's covariance for smoothing (None: its pose is not a measurement: the
    frame failed its trust verdict, stopped, or has no finite uncertainty) and its convention."""
    u = result.checks.get("uncertainty") or {}
    if result.stopped or (result.verdict or {}).get("status") == "failed":
        return None, u.get("convention", "ZXY")
    return u.get("covariance"), u.get("convention", "ZXY")


def smooth_results(results: list, points) -> SmoothedTrack | None:
    """:func:`smooth_track` of a tracker's ``[(frame, RegistrationResult)]``, with each frame's
    predicted mTRE over `points` (:func:`.checks.uncertainty.volume_points`) from its smoothed
    covariance, and how far smoothing moved it. None when too few frames are usable or the
    frames' covariances are not all in one convention."""
    if not results:
        return None
    covariances, conventions = zip(*(frame_covariance(r) for _, r in results), strict=True)
    if len(set(conventions)) != 1:
        return None
    frames = [index for index, _ in results]
    raw = np.stack([np.asarray(r.pose, dtype=np.float64) for _, r in results])
    try:
        smoothed = smooth_track(frames, raw, covariances, conventions[0])
    except np.linalg.LinAlgError:
        return None
    if smoothed is None:
        return None
    predicted = [
        predicted_mtre(pose, cov, points, smoothed.convention)
        for pose, cov in zip(smoothed.poses, smoothed.covariances, strict=True)
    ]
    to = RigidTransform(torch.as_tensor(smoothed.poses))
    shift = [
        float(
            batched_mtre(
                RigidTransform(torch.as_tensor(raw[i])[None]), RigidTransform(to.matrix[i : i + 1]), points
            )[0]
        )
        for i in range(len(frames))
    ]
    return dataclasses.replace(smoothed, predicted_mtre_mm=predicted, shift_mm=shift)
