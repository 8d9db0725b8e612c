"""The tracked-sequence smoother (register/workflows/smooth.py) against the same Gaussian model solved
another way (one dense least-squares system over every frame), on motion drawn from the model
with known noise, and on poses across the +-180 deg wrap."""

import numpy as np
import pytest
import torch
from diffdrr.pose import convert

from napari_xvr.register.workflows.smooth import (
    _PRIOR_SD,
    _motion,
    _noise,
    kalman,
    pose_matrices,
    pose_parameters,
    rts,
    smooth_track,
)

FRAME_SD = np.array([2e-3] * 3 + [1.0] * 3)  # rad, mm: a frame's own error (1 sd)


def simulate(n: int, q_rot: float, q_xyz: float, seed: int = 0):
    """A constant-velocity motion with white accelerations of variances (q_rot, q_xyz), and
    measurements of it with per-frame correlated covariances: (truth, z, r) in parameters."""
    rng = np.random.default_rng(seed)
    q = _noise(q_rot, q_xyz)[0]
    transition, noise = _motion(1.0, q)
    chol = np.linalg.cholesky(noise)
    x = np.concatenate([[0.1, -0.2, 0.3, 10.0, 800.0, -5.0], [1e-3] * 3 + [0.5] * 3])
    truth, z, r = [], [], []
    for _ in range(n):
        truth.append(x[:6].copy())
        a = rng.normal(size=(6, 6)) * 0.3 + np.eye(6)
        cov = (a @ a.T) * np.outer(FRAME_SD, FRAME_SD)
        r.append(cov)
        z.append(x[:6] + np.linalg.cholesky(cov) @ rng.normal(size=6))
        x = transition @ x + chol @ rng.normal(size=12)
    return np.array(truth), np.array(z), np.array(r)


def dense_posterior(times, z, r, measured, q):
    """The posterior of every frame's state by one weighted least-squares system (the prior of
    the first state, each transition, each measurement): mean (n, 12), covariance (n, 12, 12),
    and log p(z_2..z_n | z_1) from the joint Gaussian of all measurements."""
    n = len(times)
    rows, weights, targets = [], [], []
    prior = np.zeros((12, 12 * n))
    prior[:, :12] = np.eye(12)
    first = int(np.argmax(measured))
    rows.append(prior), weights.append(np.diag(1 / _PRIOR_SD**2))
    targets.append(np.concatenate([z[first], np.zeros(6)]))
    for t in range(1, n):
        transition, noise = _motion(float(times[t] - times[t - 1]), q)
        block = np.zeros((12, 12 * n))
        block[:, 12 * t : 12 * t + 12] = np.eye(12)
        block[:, 12 * (t - 1) : 12 * t] = -transition
        rows.append(block), weights.append(np.linalg.inv(noise)), targets.append(np.zeros(12))
    for t in np.flatnonzero(measured):
        block = np.zeros((6, 12 * n))
        block[:, 12 * t : 12 * t + 6] = np.eye(6)
        rows.append(block), weights.append(np.linalg.inv(r[t])), targets.append(z[t])
    information = sum(a.T @ w @ a for a, w in zip(rows, weights, strict=True))
    vector = sum(a.T @ w @ y for a, w, y in zip(rows, weights, targets, strict=True))
    cov = np.linalg.inv(information)
    mean = (cov @ vector).reshape(n, 12)
    # the marginal of the measurements: every state's prior (the chain without measurements)
    chain = np.linalg.inv(sum(a.T @ w @ a for a, w in zip(rows[:n], weights[:n], strict=True)))
    prior_mean = np.linalg.solve(
        sum(a.T @ w @ a for a, w in zip(rows[:n], weights[:n], strict=True)),
        sum(a.T @ w @ y for a, w, y in zip(rows[:n], weights[:n], targets[:n], strict=True)),
    )
    seen = [t for t in np.flatnonzero(measured)]
    pick = np.concatenate([np.arange(12 * t, 12 * t + 6) for t in seen])

    def logpdf(idx, frames):
        mu = prior_mean[idx]
        s = chain[np.ix_(idx, idx)] + np.block(
            [[r[a] if a == b else np.zeros((6, 6)) for b in frames] for a in frames]
        )
        d = np.concatenate([z[t] for t in frames]) - mu
        return -0.5 * (np.linalg.slogdet(s)[1] + d @ np.linalg.solve(s, d) + len(d) * np.log(2 * np.pi))

    loglik = logpdf(pick, seen) - logpdf(pick[:6], seen[:1])
    blocks = np.array([cov[12 * t : 12 * t + 12, 12 * t : 12 * t + 12] for t in range(n)])
    return mean, blocks, loglik


@pytest.mark.parametrize("gaps", [False, True])
def test_the_smoother_is_the_dense_posterior(gaps):
    """Kalman + Rauch-Tung-Striebel give the same means, covariances and likelihood as solving
    the whole sequence at once, with uneven frame steps and frames without a measurement."""
    _, z, r = simulate(12, 1e-7, 1e-2)
    times = np.arange(12.0)
    measured = np.ones(12, bool)
    if gaps:
        times = np.array([0, 1, 2, 4, 5, 6, 9, 10, 11, 12, 14, 15], float)
        measured[[3, 7]] = False
    q = _noise(1e-7, 1e-2)
    loglik, history = kalman(times, z, r, measured, q, keep=True)
    xs, ps = rts(times, history, q)
    mean, cov, expected = dense_posterior(times, z, r, measured, q[0])
    scale = np.concatenate([FRAME_SD, FRAME_SD])
    np.testing.assert_allclose(xs / scale, mean / scale, atol=1e-4)  # in sds of a frame
    np.testing.assert_allclose(ps / np.outer(scale, scale), cov / np.outer(scale, scale), atol=1e-4)
    assert loglik[0] == pytest.approx(expected, rel=1e-6)


def test_the_motion_noise_is_estimated_and_smoothing_beats_every_frame_alone():
    """On motion drawn from the model, the maximum-likelihood noise is within half a decade of
    the truth, and the smoothed poses are nearer the truth than the frames' own, in every
    parameter; the smoothed covariance says so (its sd within 0.6-1.6x the errors' rms)."""
    q_rot, q_xyz = 1e-8, 1e-2
    truth, z, r = simulate(300, q_rot, q_xyz, seed=1)
    poses = pose_matrices(z)
    smoothed = smooth_track(range(300), poses, r)
    assert abs(np.log10(smoothed.process_noise[0] / q_rot)) < 0.5, smoothed.process_noise
    assert abs(np.log10(smoothed.process_noise[1] / q_xyz)) < 0.5, smoothed.process_noise
    raw_error = pose_parameters(poses) - truth
    error = pose_parameters(smoothed.poses) - truth
    rms_raw, rms = np.sqrt((raw_error**2).mean(0)), np.sqrt((error**2).mean(0))
    assert np.all(rms < 0.8 * rms_raw), (rms, rms_raw)
    sd = np.sqrt(np.mean([np.diag(c) for c in smoothed.covariances], axis=0))
    assert np.all((sd > 0.6 * rms) & (sd < 1.6 * rms)), (sd, rms)


def test_frames_without_a_measurement_are_filled_and_too_few_are_not_smoothed():
    truth, z, r = simulate(20, 1e-9, 1e-3, seed=2)
    covariances = list(r)
    covariances[5] = None  # e.g. a failed frame
    covariances[6] = np.full((6, 6), np.nan)  # no finite uncertainty
    smoothed = smooth_track(range(20), pose_matrices(z), covariances)
    assert smoothed.measured == [i not in (5, 6) for i in range(20)]
    error = pose_parameters(smoothed.poses[5:7]) - truth[5:7]
    assert np.all(np.abs(error) < 4 * FRAME_SD), error  # from the frames around them
    assert smooth_track(range(3), pose_matrices(z[:3]), [r[0], None, r[2]]) is None
    with pytest.raises(ValueError, match="increasing"):
        smooth_track([0, 2, 1], pose_matrices(z[:3]), r[:3])


def test_poses_across_the_180_degree_wrap_smooth_continuously():
    """A sweep whose first angle crosses 180 deg: the parameters unwrap (no 2 pi jump), and the
    smoothed poses are rigid and next to the raw ones."""
    angles = np.deg2rad(np.linspace(175.0, 185.0, 11))
    rot = torch.tensor(np.stack([angles, np.full(11, 0.1), np.full(11, -0.2)], 1))
    xyz = torch.tensor([[0.0, 850.0, 0.0]] * 11, dtype=torch.float64)
    poses = convert(rot, xyz, parameterization="euler_angles", convention="ZXY").matrix.numpy()
    params = pose_parameters(poses)
    assert np.all(np.abs(np.diff(params[:, 0])) < np.deg2rad(2))
    np.testing.assert_allclose(pose_matrices(params), poses, atol=1e-9)
    cov = np.diag(FRAME_SD**2)
    smoothed = smooth_track(range(11), poses, [cov] * 11)
    rotations = smoothed.poses[:, :3, :3]
    np.testing.assert_allclose(
        rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (11, 3, 3)), atol=1e-9
    )
    np.testing.assert_allclose(smoothed.poses[:, :3, 3], poses[:, :3, 3], atol=3.0)
    assert np.max(np.abs(pose_parameters(smoothed.poses) - params)[:, :3]) < 0.01
