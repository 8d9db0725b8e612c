"""Initial poses behind one interface: ``initializer(xray) -> RigidTransform``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from diffdrr.pose import RigidTransform

from ..errors import XvrInputError
from ..geometry import carm_pose, pose_from_matrix, pose_from_params
from ..io.result import read_result, result_pose
from ..io.xray import XRay

if TYPE_CHECKING:
    import numpy as np


def parse_triple(text, name: str) -> list[float]:
    """'0,850,0' -> [0.0, 850.0, 0.0], with a clear error for the wrong count."""
    if isinstance(text, (list, tuple)):
        values = list(text)
    else:
        try:
            values = [float(v) for v in str(text).replace(" ", "").split(",") if v != ""]
        except ValueError as err:
            raise XvrInputError(f"{name} {text!r}: give comma-separated numbers, e.g. 0,850,0") from err
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError) as err:
        raise XvrInputError(f"{name} {text!r}: give comma-separated numbers, e.g. 0,850,0") from err
    if not all(math.isfinite(v) for v in numbers):
        raise XvrInputError(f"{name} {text!r}: every value must be a finite number")
    return numbers


@dataclass
class DicomInitializer:
    """Pose from the header: PositionerPrimary/SecondaryAngle and DistanceSourceToPatient."""

    orientation: str = "AP"
    name = "dicom"

    def __call__(self, xray: XRay) -> RigidTransform:
        missing = [
            tag
            for tag, value in (
                ("PositionerPrimaryAngle (0018,1510)", xray.primary_angle),
                ("PositionerSecondaryAngle (0018,1511)", xray.secondary_angle),
                ("DistanceSourceToPatient (0018,1111)", xray.source_to_patient),
            )
            if value is None
        ]
        if missing:
            raise XvrInputError(
                f"{xray.path}: the header lacks {', '.join(missing)}; use `xvr register fixed` "
                "with --rot/--xyz instead"
            )
        primary, secondary = xray.primary_angle, xray.secondary_angle
        sid, sdd = xray.source_to_patient, xray.intrinsics.sdd
        assert primary is not None and secondary is not None and sid is not None  # none is missing
        if not 0 < sid < sdd:
            raise XvrInputError(
                f"{xray.path}: DistanceSourceToPatient (0018,1111) {sid:g} mm must be between 0 and "
                f"DistanceSourceToDetector {sdd:g} mm; fix the header or use `xvr register fixed`"
            )
        if not (abs(primary) <= 360 and abs(secondary) <= 360):
            raise XvrInputError(
                f"{xray.path}: PositionerPrimary/SecondaryAngle {primary:g}, "
                f"{secondary:g} deg are out of range (-360..360)"
            )
        return carm_pose(primary, secondary, sid, self.orientation)

    def describe(self) -> dict:
        return {"type": "dicom", "orientation": self.orientation}


@dataclass
class FixedInitializer:
    """The same pose for every X-ray, from --rot/--xyz in a parameterization."""

    rot: list[float]
    xyz: list[float]
    parameterization: str = "euler_angles"
    convention: str = "ZXY"
    degrees: bool = True
    name = "fixed"

    def __post_init__(self):
        from diffdrr.registration import N_ANGULAR_COMPONENTS

        self.rot, self.xyz = parse_triple(self.rot, "--rot"), parse_triple(self.xyz, "--xyz")
        need = N_ANGULAR_COMPONENTS.get(self.parameterization, 3)
        if len(self.rot) != need:
            raise XvrInputError(f"--rot has {len(self.rot)} values; {self.parameterization} needs {need}")
        if len(self.xyz) != 3:
            raise XvrInputError(f"--xyz has {len(self.xyz)} values; give 3 (x,y,z in mm)")
        self._pose = pose_from_params(
            self.rot, self.xyz, self.parameterization, self.convention, self.degrees
        )

    def __call__(self, xray: XRay) -> RigidTransform:
        return self._pose

    def describe(self) -> dict:
        return {
            "type": "fixed",
            "rot": self.rot,
            "xyz": self.xyz,
            "parameterization": self.parameterization,
            "convention": self.convention,
            "degrees": self.degrees,
        }


@dataclass
class RestartInitializer:
    """The final pose of a previous result: a result.json, its folder, an upstream xvr ``.pth``
    (every X-ray restarts from it), or an OUTDIR of ``<stem>/result.json`` or ``<stem>.pth``."""

    previous: Path
    name = "restart"

    def __call__(self, xray: XRay) -> RigidTransform:
        path = Path(self.previous)
        if path.is_dir() and not (path / "result.json").exists():
            folder, pth = path / xray.stem, path / f"{xray.stem}.pth"
            if not (folder / "result.json").is_file() and pth.is_file():
                folder = pth
            path = folder
        return result_pose(read_result(path))

    def conventions(self) -> dict:
        """The flip and orientation the previous result was registered with (an OUTDIR of
        several: none, each X-ray's own is not known here)."""
        path = Path(self.previous)
        if path.is_dir() and not (path / "result.json").is_file():
            return {}
        inputs = read_result(path).get("inputs", {}) or {}
        return {k: inputs.get(k) for k in ("reverse_x_axis", "orientation")}

    def describe(self) -> dict:
        return {"type": "restart", "previous": str(Path(self.previous).resolve())}


@dataclass
class PoseInitializer:
    """A pose given directly (napari widgets, scripts)."""

    matrix: object
    name = "pose"

    def __call__(self, xray: XRay) -> RigidTransform:
        return pose_from_matrix(self.matrix)

    def describe(self) -> dict:
        return {"type": "pose"}


@dataclass
class LandmarkInitializer:
    """The pose that reprojects landmark pairs best (:mod:`.pnp`): a file of pairs for every
    X-ray, or a folder of ``<stem>.csv``/``<stem>.json``; with `volume_points` (a 3D Slicer
    ``.mrk.json``, CSV or JSON), the landmark files hold the X-ray's points only.
    `volume` is the volume the points were placed on (for the RAS/LPS frames)."""

    landmarks: Path
    volume: Path
    volume_points: Path | None = None
    frame: str | None = None
    orientation: str = "AP"
    reverse_x_axis: bool = False
    name = "landmarks"

    def __post_init__(self) -> None:
        self.fits: dict[str, dict] = {}
        self._centre: np.ndarray | None = None

    def file_for(self, xray: XRay) -> Path:
        path = Path(self.landmarks)
        if not path.is_dir():
            return path
        for suffix in (".json", ".csv"):
            if (path / f"{xray.stem}{suffix}").is_file():
                return path / f"{xray.stem}{suffix}"
        raise XvrInputError(
            f"{path}: no {xray.stem}.csv or {xray.stem}.json for the X-ray "
            f"{xray.path}; name each X-ray's landmarks after it"
        )

    def __call__(self, xray: XRay) -> RigidTransform:
        from ..io.landmarks import read_landmarks, volume_centre_ras
        from .pnp import solve_pose

        path = self.file_for(xray)
        pairs = read_landmarks(path, self.volume_points, self.frame)
        if self._centre is None and pairs.frame != "world":
            self._centre = volume_centre_ras(self.volume)
        fit = solve_pose(
            pairs.world(self._centre),
            pairs.pixels,
            xray.intrinsics,
            self.orientation,
            self.reverse_x_axis,
            where=str(path),
        )
        self.fits[xray.stem] = {
            "file": str(path.resolve()),
            "frame": pairs.frame,
            **fit.to_json(pairs.labels),
        }
        return fit.pose

    def describe(self) -> dict:
        return {
            "type": "landmarks",
            "landmarks": str(Path(self.landmarks).resolve()),
            "volume_points": None if self.volume_points is None else str(Path(self.volume_points).resolve()),
            "orientation": self.orientation,
            "fits": dict(self.fits),
        }
