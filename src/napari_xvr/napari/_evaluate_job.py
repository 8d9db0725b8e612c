"""The Evaluate widget's jobs: errors and projections under two poses; a trajectory replayed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import XvrInputError
from . import api
from ._jobs import LayerSnapshot, guarded
from ._register_job import standardized


@dataclass(frozen=True)
class Evaluated:
    errors: object  # napari_xvr.evaluate.Errors
    true_mm: np.ndarray  # (N, 2) projections (row, col) in mm under the true pose
    pred_mm: np.ndarray  # same under the estimated pose


@guarded
def evaluation(true_pose, pred_pose, fiducials: np.ndarray, intrinsics, orientation: str):
    """mTRE/mPE/mRPE and the fiducials' projections under both poses."""
    errors = api.evaluate_layers(true_pose, pred_pose, fiducials, intrinsics, orientation)
    yield Evaluated(
        errors,
        api.project_points(true_pose, fiducials, intrinsics, orientation),
        api.project_points(pred_pose, fiducials, intrinsics, orientation),
    )


@dataclass(frozen=True)
class Replayed:
    frames: np.ndarray  # (T, h, w) float32, standardized
    itrs: tuple[int, ...]
    done: int
    total: int


@guarded
def replay(
    volume: LayerSnapshot,
    labels: LayerSnapshot | None,
    label_ids: str,
    orientation: str,
    intrinsics,
    trajectory: list[dict],
    n_frames: int = 30,
    max_size: int = 128,
):
    """DRRs along an optimisation trajectory (a time axis for the overlay)."""
    from ..geometry import pose_from_zxy
    from ..render import render

    if not trajectory:
        raise XvrInputError("this X-ray has no trajectory; register it first (or open a result folder)")
    scale = min(1.0, max_size / max(intrinsics.height, intrinsics.width))
    small = intrinsics.rescaled(scale) if scale < 1 else intrinsics
    drr = api.make_renderer(volume, small, labels, label_ids or None, orientation)
    picks = np.unique(np.linspace(0, len(trajectory) - 1, min(n_frames, len(trajectory))).round().astype(int))
    frames = []
    for count, index in enumerate(picks, start=1):
        row = trajectory[index]
        pose = pose_from_zxy([row["r1"], row["r2"], row["r3"]], [row["tx"], row["ty"], row["tz"]])
        frames.append(standardized(render(drr, pose)[0, 0].cpu().numpy()))
        if count % 5 == 0 or count == len(picks):
            yield Replayed(np.stack(frames), tuple(int(i) for i in picks[:count]), count, len(picks))
