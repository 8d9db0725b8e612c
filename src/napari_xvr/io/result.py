"""Registration results: result.json + trajectory.csv (+ PNGs), written atomically."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..conventions import ORIENTATIONS
from ..errors import XvrInputError
from ..geometry import Intrinsics, pose_from_dict, pose_from_matrix, pose_to_dict
from ..imaging import unit_finite
from .atomic import atomic_dir

TRAJECTORY_COLUMNS = (
    "stage",
    "itr",
    "r1",
    "r2",
    "r3",
    "tx",
    "ty",
    "tz",
    "similarity",
    "time",
    "lr_rot",
    "lr_xyz",
    "start",
)
RESULT_VERSION = 1


@dataclass
class RegistrationResult:
    """What one registration produced; `to_json` is the result.json content."""

    init_pose: np.ndarray  # 4x4
    final_pose: np.ndarray | None  # 4x4, None with init_only
    intrinsics: Intrinsics
    similarity: float | None = None
    runtime_s: float = 0.0
    iterations: int = 0
    stopped: bool = False
    trajectory: list[dict] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)
    preprocessing: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    initialization: dict = field(default_factory=dict)
    multistart: dict | None = None  # chosen start, each start's similarity and pose (multistart > 0)
    images: dict = field(default_factory=dict)  # name -> float32 array, saved as PNG with --saveimg
    checks: dict = field(default_factory=dict)  # name -> what a check found (e.g. 'mirror')
    verdict: dict | None = None  # {'status': ok|suspect|failed, 'reasons': [...]} (trust.py)
    hessian: tuple | None = None  # LM's last (J^T J, detector spacing); not written
    hessian_fresh: bool = False  # that Hessian was computed in the run; not written
    views: list | None = None  # joint registration: each view's X-ray, poses, similarity (images)

    @property
    def pose(self) -> np.ndarray:
        return self.final_pose if self.final_pose is not None else self.init_pose

    def to_json(self) -> dict:
        final = None if self.final_pose is None else pose_to_dict(pose_from_matrix(self.final_pose))
        data = {
            "napari_xvr_result": RESULT_VERSION,
            "pose_convention": "4x4 matrix rendered by diffdrr.drr.DRR (camera->world, mm); "
            "rotation_deg_zxy = ZXY Euler angles in degrees; translation_mm as in DiffDRR",
            "inputs": self.inputs,
            "intrinsics": self.intrinsics.to_dict(),
            "preprocessing": self.preprocessing,
            "options": self.options,
            "initialization": self.initialization,
            "init_pose": pose_to_dict(pose_from_matrix(self.init_pose)),
            "final_pose": final,
            "similarity": None if self.similarity is None else float(self.similarity),
            "runtime_s": float(self.runtime_s),
            "iterations": int(self.iterations),
            "stopped_early": bool(self.stopped),
            "multistart": self.multistart,
            "checks": self.checks,
            "verdict": self.verdict,
        }
        if self.views is not None:
            data["views"] = [{k: v for k, v in view.items() if k != "images"} for view in self.views]
        data["pose_sha256"] = pose_digest(data)
        return data

    def view_result(self, index: int) -> RegistrationResult:
        """One view of a joint registration as a single-view result: its own poses, detector,
        similarity and images; the joint verdict (the pose is the joint one)."""
        if self.views is None:
            raise ValueError("view_result: this is not a joint registration's result")
        views = self.views
        view = views[index]
        return RegistrationResult(
            init_pose=pose_from_dict(view["init_pose"]).matrix[0].double().numpy(),
            final_pose=pose_from_dict(view["final_pose"]).matrix[0].double().numpy(),
            intrinsics=Intrinsics(**view["intrinsics"]),
            similarity=view["similarity"],
            runtime_s=self.runtime_s,
            iterations=self.iterations,
            stopped=self.stopped,
            inputs={
                **self.inputs,
                "xray": view["xray"],
                "header": (self.inputs.get("headers") or [None] * (index + 1))[index],
            },
            preprocessing=self.preprocessing,
            options=self.options,
            initialization=self.initialization,
            images=dict(view.get("images") or {}),
            checks={
                "joint": {
                    "view": index,
                    "views": len(views),
                    "relative_pose": view["relative_pose"],
                    "joint_similarity": self.similarity,
                }
            },
            verdict=self.verdict,
        )

    def trajectory_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=TRAJECTORY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.trajectory:
            writer.writerow({k: row[k] for k in TRAJECTORY_COLUMNS})
        return out.getvalue()


def _png(path: Path, image: np.ndarray) -> None:
    import imageio.v3 as iio

    img = unit_finite(np.asarray(image, dtype=np.float64))
    iio.imwrite(path, (img * 255).round().astype(np.uint8))


def write_result(result: RegistrationResult, folder, saveimg: bool = False) -> Path:
    """Write `folder`/result.json, trajectory.csv and (with `saveimg`) PNGs, all or nothing.

    A joint registration also gets ``views/<k>_<stem>/``: each view as a single-view result
    (its own pose, similarity and, with `saveimg`, X-ray, DRR and overlay)."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        _write_files(result, tmp, saveimg)
        for index, name in enumerate(view_folders(result)):
            (tmp / "views" / name).mkdir(parents=True)
            _write_files(result.view_result(index), tmp / "views" / name, saveimg)
    return folder


def view_folders(result: RegistrationResult) -> list[str]:
    """The folder names of a joint result's views: ``<k>_<stem>``."""
    from .xray import xray_stem

    return [f"{k}_{xray_stem(view['xray'])}" for k, view in enumerate(result.views or [])]


def _write_files(result: RegistrationResult, tmp: Path, saveimg: bool) -> None:
    (tmp / "result.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    (tmp / "trajectory.csv").write_text(result.trajectory_csv())
    if saveimg:
        for name, image in result.images.items():
            if image is not None:
                _png(tmp / f"{name}.png", image)
        if "final_drr" in result.images and "xray" in result.images:
            _overlay_png(tmp / "overlay.png", result.images["xray"], result.images["final_drr"])


def _overlay_png(path: Path, xray: np.ndarray, drr: np.ndarray) -> None:
    """X-ray in grey with the DRR's edges in colour (magenta/green blend)."""
    import imageio.v3 as iio

    a, b = unit_finite(np.asarray(xray, np.float64)), unit_finite(np.asarray(drr, np.float64))
    if a.shape != b.shape:
        return
    rgb = np.stack([a, b, a], axis=-1)
    iio.imwrite(path, (rgb * 255).round().astype(np.uint8))


def read_result(path) -> dict:
    """Load result.json from a result folder or the file itself, checked.

    An upstream xvr ``<stem>.pth`` is read too (converted to the result.json form).
    """
    path = Path(path)
    if path.suffix.lower() == ".pth" and not path.is_dir():
        return _read_upstream(path)
    file = path / "result.json" if path.is_dir() else path
    if not file.is_file():
        raise XvrInputError(f"{path}: no result.json here; give a result folder or its result.json")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise XvrInputError(
            f"{file}: not UTF-8 text ({err.reason} at byte {err.start}); the file "
            "is damaged, write the result again"
        ) from err
    except (OSError, json.JSONDecodeError) as err:
        raise XvrInputError(f"{file}: not valid JSON ({err})") from err
    if not isinstance(data, dict) or "init_pose" not in data:
        raise XvrInputError(f"{file}: not a napari-xvr result (a JSON object with 'init_pose')")
    return validate_result(data, file)


def pose_digest(data: dict) -> str:
    """SHA-256 of a result's two pose matrices as written in its JSON."""
    matrices = [None if data.get(k) is None else data[k].get("matrix") for k in ("init_pose", "final_pose")]
    return hashlib.sha256(json.dumps(matrices).encode()).hexdigest()


def validate_result(data: dict, file) -> dict:
    """The fields that other code trusts: poses (4x4 rigid, finite) and intrinsics (in range)."""
    for key in ("init_pose", "final_pose"):
        pose = data.get(key)
        if pose is None and key == "final_pose":
            continue
        if not isinstance(pose, dict):
            raise XvrInputError(f"{file}: {key!r} must be an object with a 'matrix'")
        try:
            pose_from_dict(pose)
        except (XvrInputError, ValueError, TypeError) as err:
            raise XvrInputError(f"{file}: {key}: {err}") from err
    intrinsics = data.get("intrinsics")
    if intrinsics is None:
        raise XvrInputError(
            f"{file}: no 'intrinsics' (sdd, height, width, delx, dely, x0, y0); "
            "a result needs its detector, so this one cannot be used"
        )
    if not isinstance(intrinsics, dict):
        raise XvrInputError(f"{file}: 'intrinsics' must be an object (sdd, height, width, ...)")
    try:
        Intrinsics(**intrinsics)
    except XvrInputError as err:  # it names the field already
        raise XvrInputError(f"{file}: {err}") from err
    except (TypeError, ValueError) as err:
        raise XvrInputError(f"{file}: intrinsics: {err}") from err
    for key in ("inputs", "preprocessing", "options"):
        if not isinstance(data.get(key, {}), dict):
            raise XvrInputError(f"{file}: {key!r} must be an object")
    _check_inputs(data.get("inputs") or {}, file)
    recorded = data.get("pose_sha256")
    if recorded is not None and recorded != pose_digest(data):
        raise XvrInputError(
            f"{file}: its poses do not match the checksum written with them; the file "
            "is damaged (if you edited a pose on purpose, delete 'pose_sha256')"
        )
    return data


_INPUT_CHECKS = {  # what replaying, exporting and opening a result read from its 'inputs'
    "xray": (lambda v: v is None or isinstance(v, str), "a file name"),
    "volume": (lambda v: v is None or isinstance(v, str), "a file name"),
    "mask": (lambda v: v is None or isinstance(v, str), "a file name or null"),
    "orientation": (lambda v: v in ORIENTATIONS, " or ".join(ORIENTATIONS)),
    "renderer": (lambda v: v in ("fast", "trilinear", "siddon"), "fast, trilinear or siddon"),
    "reverse_x_axis": (lambda v: isinstance(v, bool), "true or false"),
    "voxel_shift": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1,
        "a number in [0, 1]",
    ),
    "labels": (
        lambda v: (
            v is None
            or (isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v))
        ),
        "a list of whole numbers or null",
    ),
}


def _check_inputs(inputs: dict, file) -> None:
    for key, (ok, want) in _INPUT_CHECKS.items():
        if key in inputs and not ok(inputs[key]):
            raise XvrInputError(
                f"{file}: inputs.{key} is {inputs[key]!r}; it must be {want} (the file "
                "was edited or damaged: fix it, or register again)"
            )


def _read_upstream(path: Path) -> dict:
    from .upstream import read_upstream_result

    return read_upstream_result(path)


def result_pose(data: dict):
    """The final pose of a result dict (or the initial one when it was init_only)."""
    pose = data.get("final_pose") or data["init_pose"]
    return pose_from_dict(pose)


MAX_TRAJECTORY_BYTES = 256 << 20  # far more rows than any registration writes


def trajectory_file(path) -> Path:
    """Where a result's trajectory is: a folder's or result.json's ``trajectory.csv``, or the
    ``name.csv`` beside a ``name.json`` (what the napari writer saves)."""
    path = Path(path).expanduser()
    if path.is_dir():
        return path / "trajectory.csv"
    if path.name == "result.json":
        return path.with_name("trajectory.csv")
    return path.with_suffix(".csv") if path.suffix.lower() == ".json" else path


def read_trajectory(path) -> list[dict]:
    """A result's trajectory (see :func:`trajectory_file`) as a list of dicts of floats."""
    file = trajectory_file(path)
    if not file.is_file():
        raise XvrInputError(f"{path}: no {file.name}; was this registered with --init_only?")
    if file.stat().st_size > MAX_TRAJECTORY_BYTES:
        raise XvrInputError(f"{file}: far larger than a trajectory; the file is damaged")
    try:
        with file.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"r1", "tx"} <= set(reader.fieldnames):
                raise XvrInputError(
                    f"{file}: not a trajectory (its header is not {','.join(TRAJECTORY_COLUMNS)})"
                )
            return [
                {k: (float(v) if v not in ("", None) else math.nan) for k, v in row.items() if k is not None}
                for row in reader
            ]
    except XvrInputError:
        raise
    except (UnicodeDecodeError, ValueError, TypeError, csv.Error) as err:
        raise XvrInputError(f"{file}: not a readable trajectory ({err}); the file is damaged") from err
