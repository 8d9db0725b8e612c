"""Which X-ray pixels the CT can explain: not those whose rays cross where the CT was cut.

A CT is often shorter than the patient (an abdomen CT under a chest X-ray's field, a head CT
cut at the neck): on a face of the volume where the body is cut, the anatomy goes on beyond it,
and the X-ray shows it while the DRR cannot. :func:`cut_faces` finds those faces once (the
share of the face's voxels that are body, and the body's extent on the face);
:func:`explained_pixels` gives, for a pose and the renderer's detector, the pixels whose rays
stay out of every cut face's continuation (a prism going on from the face, as wide as the body
on it, plus a margin). Faces with only air on them (the table side, the sides of a body inside
the scanner's field) are not cut: rays through them see air in the X-ray too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

BODY_HU = -500.0
"""A voxel above this is body (lung included)."""
CUT_SHARE = 0.05
"""A face is cut when at least this share of its voxels is body."""
MARGIN_VOXELS = 4
FAR = 1e6
CHORD_MM = 10.0
"""A ray crossing more than this of a continuation sees anatomy the CT does not have."""


@dataclass(frozen=True)
class CutFace:
    """A face of the volume's box where the body is cut: `axis` (0, 1, 2 of the voxel grid),
    `high` (the face at the last index) and the body's index range on the face along the two
    other axes (inclusive, widened by the margin)."""

    axis: int
    high: bool
    lo: tuple[float, float]
    hi: tuple[float, float]


def cut_faces(hu: np.ndarray) -> list[CutFace]:
    """The faces of a (I, J, K) volume of CT numbers where the body is cut."""
    hu = np.asarray(hu)
    faces = []
    for axis in range(3):
        for high in (False, True):
            face = np.take(hu, -1 if high else 0, axis=axis) > BODY_HU
            if face.mean() < CUT_SHARE:
                continue
            idx = np.argwhere(face)
            lo, hi = idx.min(0) - MARGIN_VOXELS, idx.max(0) + MARGIN_VOXELS
            faces.append(CutFace(axis, high, (float(lo[0]), float(lo[1])), (float(hi[0]), float(hi[1]))))
    return faces


def volume_cut_faces(subject) -> list[CutFace]:
    """:func:`cut_faces` of a DiffDRR subject's CT (its HU volume)."""
    return cut_faces(subject.volume.data[0].cpu().numpy())


@torch.no_grad()
def explained_pixels(drr, pose, faces: list[CutFace]) -> torch.Tensor | None:
    """(1, 1, H, W) bool on the renderer's device at its current detector: True where the ray
    stays out of every cut face's continuation. None when no face is cut."""
    if not faces:
        return None
    source, target = drr.detector(pose, None)  # world mm, (1, 1, 3) and (1, N, 3)
    src = drr.affine_inverse(source)[0, 0].double()
    tgt = drr.affine_inverse(target)[0].double()
    direction = tgt - src
    length_mm = (target[0] - source[0]).double().norm(dim=-1)
    shape = drr.density.shape[-3:]
    bad = torch.zeros(len(tgt), dtype=torch.bool, device=tgt.device)
    for face in faces:
        lo = torch.full((3,), -FAR, dtype=torch.float64, device=tgt.device)
        hi = torch.full((3,), FAR, dtype=torch.float64, device=tgt.device)
        others = [a for a in range(3) if a != face.axis]
        for k, a in enumerate(others):
            lo[a], hi[a] = face.lo[k] - 0.5, face.hi[k] + 0.5
        if face.high:
            lo[face.axis] = shape[face.axis] - 0.5
        else:
            hi[face.axis] = -0.5
        with np.errstate(all="ignore"):
            a_t = (lo - src) / direction
            b_t = (hi - src) / direction
        near = torch.minimum(a_t, b_t).nan_to_num(-FAR).amax(dim=-1).clamp(0, 1)
        far = torch.maximum(a_t, b_t).nan_to_num(FAR).amin(dim=-1).clamp(0, 1)
        bad |= (far - near).clamp_min(0) * length_mm > CHORD_MM
    height, width = drr.detector.height, drr.detector.width
    return (~bad).reshape(1, 1, height, width)
