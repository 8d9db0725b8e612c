"""Realistic X-ray cases: C-arm views of an anatomy with header errors, written as DICOMs.

Every case draws, from its own seed: a view of its family (AP, PA, lateral, oblique, or a
partial field of view that shows only part of the CT), the patient up to 20 mm off the
isocentre along each axis and turned up to 3 deg about the beam, a source-to-isocentre and a
source-to-detector distance, a detector, the header's angles 2-4 deg off the truth, and the
exposure and vendor processing of its anatomy's profile. ``truth.json`` keeps the true poses (in
the registration CT's world), each case's detector and what made its image; it is the layout
``xvr evaluate -t`` and ``xvr demo`` read.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry import Intrinsics, pose_from_zxy, pose_to_dict
from ..io.atomic import atomic_write_text
from ..io.dicom_write import write_xray_dicom
from .anatomy import prepare
from .formation import Acquisition, Processing, Realism

VIEWS = ("AP", "PA", "lateral", "oblique", "partial")
ANATOMY_VIEWS = {
    "chest": ("AP", "PA", "oblique", "lateral", "partial"),
    "abdomen": ("AP", "oblique", "lateral", "partial"),
    "head": ("AP", "PA", "lateral", "oblique"),
    "skull": ("AP", "PA", "lateral"),
}
# (kVp range, scatter-to-primary range): a head scatters less and is imaged softer than a trunk
PROFILES = {
    "chest": ((85, 120), (0.4, 1.0)),
    "abdomen": ((75, 100), (0.6, 1.0)),
    "head": ((65, 85), (0.2, 0.5)),
    "skull": ((65, 85), (0.2, 0.5)),
}
DETECTORS = ((256, 256, 1.6), (256, 320, 1.3), (288, 288, 1.4), (240, 240, 1.8))
PARTIAL_DETECTOR = (192, 192, 1.1)


@dataclass(frozen=True)
class Case:
    """Everything drawn for one realistic X-ray."""

    anatomy: str
    view: str
    primary: float
    secondary: float
    tertiary: float
    offset: tuple[float, ...]  # (3,) mm
    sid: float
    intrinsics: Intrinsics
    header_primary: float
    header_secondary: float
    acquisition: Acquisition
    processing: Processing
    seed: int

    def true_pose(self):
        tx, ty, tz = self.offset
        return pose_from_zxy([self.primary, self.secondary, self.tertiary], [tx, self.sid + ty, tz])


def _signed(rng, lo, hi) -> float:
    return float(rng.choice([-1, 1]) * rng.uniform(lo, hi))


def _angles(view: str, rng) -> tuple[float, float]:
    wobble = lambda: rng.uniform(-6, 6)  # noqa: E731
    if view in ("AP", "partial"):
        return (wobble() if view == "AP" else _signed(rng, 0, 30)), wobble()
    if view == "PA":
        return 180 + wobble(), wobble()
    if view == "lateral":
        return _signed(rng, 84, 96), wobble()
    if view == "oblique":
        return _signed(rng, 20, 50), rng.uniform(-25, 25)
    raise ValueError(f"view {view!r}: use one of {', '.join(VIEWS)}")


def draw_case(anatomy: str, view: str, seed: int) -> Case:
    """One case of `anatomy` seen from `view`, drawn from `seed` alone."""
    rng = np.random.default_rng(seed)
    primary, secondary = _angles(view, rng)
    sid = rng.uniform(700, 900)
    sdd = sid + rng.uniform(250, 450)
    if view == "partial":
        h, w, spacing = PARTIAL_DETECTOR
        x0, y0 = rng.uniform(-40, 40, 2)
    else:
        h, w, spacing = DETECTORS[int(rng.integers(len(DETECTORS)))]
        x0, y0 = rng.uniform(-10, 10, 2)
    intrinsics = Intrinsics(
        sdd=float(sdd), height=h, width=w, delx=spacing, dely=spacing, x0=float(x0), y0=float(y0)
    )
    kvp, spr = PROFILES[anatomy]
    acquisition = Acquisition(
        kvp=float(rng.uniform(*kvp)),
        al_mm=float(rng.uniform(2.5, 4.0)),
        cu_mm=float(rng.choice([0.0, 0.1, 0.2])),
        photons_per_mm2=float(np.exp(rng.uniform(np.log(1e4), np.log(1e5)))),
        electronic_noise=float(rng.uniform(2, 8)),
        scatter_to_primary=float(rng.uniform(*spr)),
        scatter_sigma_mm=float(rng.uniform(25, 60)),
        blur_mm=float(rng.uniform(0.3, 1.0)),
        heel_pct=float(rng.uniform(4, 12)),
        heel_angle_deg=float(rng.uniform(0, 360)),
        gain_pct=float(rng.uniform(0.5, 3)),
        stripes_pct=float(rng.uniform(0.1, 0.6)),
        saturation=float(rng.uniform(0.7, 0.95)),
        shutter_leak=float(np.exp(rng.uniform(np.log(5e-4), np.log(1e-2)))),
    )
    processing = Processing(
        drc=float(rng.uniform(0.2, 0.8)),
        drc_sigma_mm=float(rng.uniform(15, 50)),
        unsharp=float(rng.uniform(0.3, 2.0)),
        unsharp_sigma_mm=float(rng.uniform(1.5, 5)),
        contrast=float(rng.uniform(3, 8)),
        gamma=float(rng.uniform(0.7, 1.4)),
        bits=int(rng.choice([12, 14, 16])),
        monochrome1=bool(rng.uniform() < 0.3),
    )
    return Case(
        anatomy,
        view,
        float(primary),
        float(secondary),
        float(rng.uniform(-3, 3)),
        tuple(float(v) for v in rng.uniform(-20, 20, 3)),
        float(sid),
        intrinsics,
        float(primary + _signed(rng, 2, 4)),
        float(secondary + _signed(rng, 2, 4)),
        acquisition,
        processing,
        int(seed),
    )


def case_seed(anatomy: str, seed: int, index: int) -> int:
    """The seed of case `index` of a set: distinct per anatomy, set seed and index."""
    return (zlib.crc32(anatomy.encode()) % 100_000) * 1_000_000 + seed * 1000 + index


def _jsonable(value):
    if dataclasses.is_dataclass(value):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def write_case(case: Case, grid, path: Path, realism: Realism | None = None, device="cpu") -> dict:
    """Simulate `case` from `grid` (the truth CT's materials) and write its DICOM; returns its
    truth entry."""
    from .xray import simulate_xray

    rng = np.random.default_rng(case.seed + 7919)
    pose = case.true_pose()
    xray = simulate_xray(
        grid,
        pose.matrix[0].double().numpy(),
        case.intrinsics,
        rng,
        realism=realism,
        acquisition=case.acquisition,
        processing=case.processing,
    )
    write_xray_dicom(
        path,
        xray.pixels,
        case.intrinsics,
        case.header_primary,
        case.header_secondary,
        case.sid,
        modality="RF",
        extra={
            "PhotometricInterpretation": "MONOCHROME1" if xray.monochrome1 else "MONOCHROME2",
            "BitsStored": xray.bits,
            "HighBit": xray.bits - 1,
        },
    )
    fields = {
        k: v
        for k, v in dataclasses.asdict(case).items()
        if k not in ("intrinsics", "acquisition", "processing")
    }
    return {
        "true_pose": pose_to_dict(pose),
        **_jsonable(fields),
        "intrinsics": case.intrinsics.to_dict(),
        "acquisition": _jsonable(case.acquisition),
        "processing": _jsonable(case.processing),
        "realism": (realism or Realism.every()).name,
        "annotated_fraction": None if xray.annotated is None else float(xray.annotated.mean()),
    }


def make_realistic_cases(
    out_dir,
    anatomy: str,
    n: int,
    seed: int = 0,
    cache=None,
    realism: Realism | None = None,
    views=None,
    progress=None,
) -> Path:
    """Write `n` realistic X-ray DICOMs of `anatomy` (views in turn) and truth.json into
    `out_dir`; the anatomy's CTs go to `cache` (default: `out_dir`/volume). Returns truth.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prepared = prepare(anatomy, Path(cache) if cache else out_dir / "volume")
    grid = prepared.truth_volume().materials()
    views = tuple(views or ANATOMY_VIEWS[anatomy])
    truth = {
        "volume": str(prepared.registration_ct.resolve()),
        "mask": None if prepared.registration_mask is None else str(prepared.registration_mask.resolve()),
        "orientation": "AP",
        "anatomy": anatomy,
        "fiducials_mm": np.asarray(prepared.fiducials_mm).tolist(),
        "cases": {},
    }
    for index in range(n):
        view = views[index % len(views)]
        case = draw_case(anatomy, view, case_seed(anatomy, seed, index))
        name = f"{anatomy}_{index:03d}_{view}"
        truth["cases"][name] = write_case(case, grid, out_dir / f"{name}.dcm", realism)
        if progress:
            progress(index + 1, n, name)
    truth["intrinsics"] = next(iter(truth["cases"].values()))["intrinsics"] if n else None
    return atomic_write_text(out_dir / "truth.json", json.dumps(truth, indent=2) + "\n")
