"""Python API on napari layers *or* plain arrays, without a viewer (and without Qt).

Every function takes napari layers (anything with ``.data``, ``.affine``/``.scale`` and
``.metadata``) or arrays plus the geometry they lack, and returns plain results. The widgets'
workers call these same functions.

>>> result = register_layers(xray_layer, ct_layer, init_pose)   # doctest: +SKIP
>>> result.final_pose  # 4x4, DiffDRR convention
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import defaults
from ..errors import XvrInputError
from ..geometry import Intrinsics, pose_from_dict, pose_from_matrix, pose_from_zxy
from ..io.xray import XRay
from ._layers import KIND, frames_of, intrinsics_from_meta


def _affine(layer_or_array, affine) -> np.ndarray:
    if affine is not None:
        return np.asarray(affine, dtype=np.float64)
    if hasattr(layer_or_array, "affine"):
        layer = layer_or_array
        matrix = np.asarray(layer.affine.affine_matrix, dtype=np.float64)
        scale = np.diag(list(layer.scale) + [1.0])
        shift = np.eye(4)
        shift[:3, 3] = layer.translate
        return matrix @ shift @ scale
    raise XvrInputError("a volume given as an array needs its 4x4 voxel->world affine (mm)")


def _data(layer_or_array) -> np.ndarray:
    data = getattr(layer_or_array, "data", layer_or_array)
    data = np.asarray(data)
    if data.ndim != 3:
        raise XvrInputError(f"a volume must be 3D, got shape {data.shape}")
    return data


def _meta(layer) -> dict:
    return dict(getattr(layer, "metadata", {}) or {})


def subject_from_layers(volume, labels=None, label_ids=None, orientation: str | None = None, affine=None):
    """The DiffDRR subject of a volume layer (+ labels layer) or of arrays with `affine`."""
    import torchio as tio

    from ..io.volume import parse_labels, read_volume

    data = _data(volume)
    aff = _affine(volume, affine)
    orientation = orientation or _meta(volume).get("orientation", "AP")
    image = tio.ScalarImage(tensor=torch.as_tensor(data.astype(np.float32))[None], affine=aff)
    lab = None
    if labels is not None:
        lab_data = _data(labels)
        lab = tio.LabelMap(
            tensor=torch.as_tensor(lab_data.astype(np.int32))[None],
            affine=_affine(labels, affine if not hasattr(labels, "affine") else None),
        )
    return read_volume(image, lab, parse_labels(label_ids), orientation)


def intrinsics_of(xray, intrinsics: Intrinsics | None = None) -> Intrinsics:
    """Intrinsics given, or those an X-ray/DRR layer carries in its metadata."""
    if intrinsics is not None:
        return intrinsics
    found = intrinsics_from_meta(_meta(xray))
    if found is None:
        raise XvrInputError(
            f"layer {getattr(xray, 'name', 'xray')!r} has no intrinsics in its metadata; open the "
            "X-ray with napari-xvr or type them in the DRR and pose widget"
        )
    return found


def xray_from_layer(xray, intrinsics: Intrinsics | None = None, reducefn="max") -> XRay:
    """An :class:`~napari_xvr.io.XRay` from a 2D (or frames x 2D) layer or array."""
    data = np.asarray(getattr(xray, "data", xray), dtype=np.float32)
    if data.ndim == 4:  # frames on an axis of their own (napari/_layers.py)
        data = frames_of(data)
    if data.ndim == 3:
        from ..io.xray import reduce_frames

        data = reduce_frames(data, reducefn, getattr(xray, "name", "xray"))
    if data.ndim != 2:
        raise XvrInputError(f"an X-ray must be a 2D image, got shape {data.shape}")
    intr = intrinsics_of(xray, intrinsics)
    if (intr.height, intr.width) != data.shape:
        intr = intr.with_overrides(height=data.shape[0], width=data.shape[1])
    meta = _meta(xray)
    return XRay(
        image=np.ascontiguousarray(data),
        intrinsics=intr,
        path=None,
        pf_to_af=bool(meta.get("pf_to_af", False)),
        primary_angle=meta.get("primary_angle"),
        secondary_angle=meta.get("secondary_angle"),
        source_to_patient=meta.get("source_to_patient"),
        header=dict(meta.get("header", {})),
    )


def as_pose(pose):
    """A RigidTransform from a RigidTransform, a 4x4 matrix, a pose dict or (rot, xyz)."""
    if hasattr(pose, "matrix"):
        return pose
    if isinstance(pose, dict):
        return pose_from_dict(pose)
    if isinstance(pose, tuple) and len(pose) == 2:
        return pose_from_zxy(*pose)
    return pose_from_matrix(pose)


def make_renderer(
    volume,
    intrinsics: Intrinsics,
    labels=None,
    label_ids=None,
    orientation=None,
    renderer: str = defaults.reg("renderer"),
    device=defaults.reg("device"),
    affine=None,
    reverse_x_axis: bool = defaults.reg("reverse_x_axis"),
):
    """A DiffDRR DRR module for a volume layer/array (reuse it across renders)."""
    from ..render import make_drr

    subject = subject_from_layers(volume, labels, label_ids, orientation, affine)
    return make_drr(subject, intrinsics, renderer=renderer, reverse_x_axis=reverse_x_axis, device=device)


def render_drr(
    volume,
    pose,
    intrinsics: Intrinsics,
    labels=None,
    label_ids=None,
    orientation=None,
    renderer=defaults.reg("renderer"),
    affine=None,
    drr=None,
    reverse_x_axis: bool = defaults.reg("reverse_x_axis"),
) -> np.ndarray:
    """The DRR (H, W float32) of a volume layer/array at `pose`."""
    from ..render import render

    drr = drr or make_renderer(
        volume,
        intrinsics,
        labels,
        label_ids,
        orientation,
        renderer,
        affine=affine,
        reverse_x_axis=reverse_x_axis,
    )
    return render(drr, as_pose(pose))[0, 0].cpu().numpy().astype(np.float32)


@dataclass(frozen=True)
class CarmOutline:
    """World coordinates (mm) of the C-arm for a pose: source, detector rectangle, central ray.

    ``corners`` are the detector's outer corners (pixel edges, not centres), in order top-left,
    top-right, bottom-right, bottom-left of the DRR; ``row_step`` and ``col_step`` are the world
    vectors from one pixel to the next down a column and along a row of the DRR.
    """

    source: np.ndarray  # (3,)
    corners: np.ndarray  # (4, 3)
    center: np.ndarray  # (3,) where the central ray meets the detector
    row_step: np.ndarray  # (3,) mm per DRR row
    col_step: np.ndarray  # (3,) mm per DRR column
    shape: tuple[int, int]  # (height, width) of the DRR the outline was made for

    def image_affine(self, shape: tuple[int, int], thickness: float = 1.0) -> np.ndarray:
        """The 4x4 affine that lays an image of `shape` (as a (1, H, W) volume) onto the
        detector in world mm: its pixels tile the detector rectangle whatever their number."""
        rows, cols = self.shape
        step_r = self.row_step * rows / shape[0]
        step_c = self.col_step * cols / shape[1]
        normal = np.cross(step_r, step_c)
        affine = np.eye(4)
        affine[:3, 0] = thickness * normal / np.linalg.norm(normal)
        affine[:3, 1], affine[:3, 2] = step_r, step_c
        affine[:3, 3] = self.corners[0] + 0.5 * (step_r + step_c)
        return affine


def carm_outline(drr, pose) -> CarmOutline:
    """Where DiffDRR puts the source and detector for `pose` (uses the DRR's own detector)."""
    h, w = drr.detector.height, drr.detector.width
    if h < 2 or w < 2:
        raise XvrInputError(f"the C-arm outline needs a detector of 2 x 2 pixels or more, not {h} x {w}")
    with torch.no_grad():
        source, target = drr.detector(as_pose(pose).to(drr.device), None)
    grid = target[0].reshape(h, w, 3).double().cpu().numpy()  # pixel centres
    row = (grid[-1, 0] - grid[0, 0]) / (h - 1)
    col = (grid[0, -1] - grid[0, 0]) / (w - 1)
    half_r, half_c = 0.5 * row, 0.5 * col
    corners = np.stack(
        [
            grid[0, 0] - half_r - half_c,
            grid[0, -1] - half_r + half_c,
            grid[-1, -1] + half_r + half_c,
            grid[-1, 0] + half_r - half_c,
        ]
    )
    return CarmOutline(
        source=source[0, 0].double().cpu().numpy(),
        corners=corners,
        center=corners.mean(axis=0),
        row_step=row,
        col_step=col,
        shape=(h, w),
    )


def register_layers(
    xray,
    volume,
    init_pose,
    labels=None,
    label_ids=None,
    intrinsics=None,
    options=None,
    preprocessing=None,
    renderer=defaults.reg("renderer"),
    device=defaults.reg("device"),
    orientation=None,
    stop=None,
    affine=None,
    reverse_x_axis: bool = defaults.reg("reverse_x_axis"),
    mirror_check: bool = defaults.reg("mirror_check"),
    retry_starts: int = 0,
):
    """Register an X-ray layer/array to a volume layer/array; returns the RegistrationResult.

    It is the CLI's pipeline (:func:`napari_xvr.register.workflows.one_xray.register_xray`): the result
    carries the verdict, the mirror and setup checks and, with `retry_starts`, the retry of
    ``--multistart auto``. Arrays need their geometry: `intrinsics` for the X-ray, the
    voxel->world `affine` (mm, the frame of :func:`napari_xvr.io.read_volume`) for the volume.
    """
    from ..register import Done, Preprocessing, RegistrationOptions
    from ..register.options import RunChecks
    from ..register.volume_spec import VolumeSpec
    from ..register.workflows.one_xray import register_xray

    preprocessing = preprocessing or Preprocessing()
    xr = xray_from_layer(xray, intrinsics, preprocessing.reducefn)
    drr = make_renderer(
        volume, xr.intrinsics, labels, label_ids, orientation, renderer, device, affine, reverse_x_axis
    )
    meta = _meta(volume)
    spec = VolumeSpec(
        Path(meta.get("path") or getattr(volume, "name", None) or "volume"),
        None if labels is None else (_meta(labels).get("path") or getattr(labels, "name", "labels")),
        label_ids,
        orientation or meta.get("orientation", "AP"),
        renderer,
        reverse_x_axis,
        device=str(drr.device),
    )
    result = None
    for event in register_xray(
        xr,
        drr,
        as_pose(init_pose),
        spec,
        {"type": "pose"},
        options or RegistrationOptions(),
        preprocessing,
        keep_images=True,
        stop=stop,
        xray_name=getattr(xray, "name", "X-ray"),
        checks=RunChecks(mirror_check=mirror_check, retry_starts=retry_starts),
    ):
        if isinstance(event, Done):
            result = event.result
    return result


def evaluate_layers(true_pose, pred_pose, fiducials, intrinsics: Intrinsics, orientation="AP"):
    """mTRE / mPE / mRPE (mm) of `pred_pose` against `true_pose` on fiducials (N, 3 world mm)."""
    from ..evaluate import evaluate_poses

    points = np.asarray(getattr(fiducials, "data", fiducials), dtype=np.float64)
    return evaluate_poses(as_pose(true_pose), as_pose(pred_pose), points, intrinsics, orientation)


def project_points(pose, fiducials, intrinsics: Intrinsics, orientation="AP") -> np.ndarray:
    """(N, 2) detector positions in mm (row, column) of world fiducials: X-ray layer coordinates."""
    from ..evaluate import project

    points = np.asarray(getattr(fiducials, "data", fiducials), dtype=np.float64)
    cols_rows = project(as_pose(pose), points, intrinsics, orientation).double().numpy()
    return np.stack([cols_rows[:, 1] * intrinsics.dely, cols_rows[:, 0] * intrinsics.delx], axis=1)


__all__ = [
    "KIND",
    "CarmOutline",
    "as_pose",
    "carm_outline",
    "evaluate_layers",
    "intrinsics_of",
    "make_renderer",
    "project_points",
    "register_layers",
    "render_drr",
    "subject_from_layers",
    "xray_from_layer",
]
