"""Joint (multi-view) registration: several X-rays of one patient position, one pose.

A single view pins the pose poorly along its central ray; two views at an angle pin it
everywhere. Each view's camera sits at a known pose relative to the first one's
(``pose_k = pose @ relative_k``): from the DICOM headers' C-arm angles and distances (a biplane
system or a rotated C-arm) or from a file of poses. The engine optimises the first view's pose
against all of them (:func:`.engine.register` with `relatives`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from diffdrr.pose import RigidTransform

from ...errors import XvrInputError
from ...geometry import pose_from_dict, pose_from_matrix
from ...io.jsonfile import read_json
from ...io.xray import XRay, read_xray, xray_stem
from ..engine import Preprocessing, StopToken, check_stages
from ..initializers import DicomInitializer
from ..options import Outputs, RegistrationOptions, RunChecks
from ..volume_spec import VolumeSpec
from .one_xray import register_xray
from .pipeline import XrayStarted, collect_xrays, describe, plan_outputs

GEOMETRY_HELP = (
    "where each view's camera sits relative to the first: 'dicom' (the headers' "
    "PositionerPrimary/SecondaryAngle and DistanceSourceToPatient) or a JSON file "
    'of each view\'s pose in any common frame: {"views": [{"xray": NAME, '
    '"pose": {"matrix": 4x4} or {"rotation_deg_zxy": [...], '
    '"translation_mm": [...]}}, ...]}'
)


def relative_poses(xrays: Sequence[XRay], geometry="dicom", orientation: str = "AP") -> list[np.ndarray]:
    """Each view's 4x4 camera pose relative to the first view's (the first is the identity)."""
    if len(xrays) < 2:
        raise XvrInputError(f"--joint needs at least 2 X-rays; {len(xrays)} given")
    if str(geometry) == "dicom":
        poses = [DicomInitializer(orientation)(xray).matrix[0].double().numpy() for xray in xrays]
    else:
        poses = _file_poses(Path(geometry), xrays)
    first = np.linalg.inv(poses[0])
    return [first @ pose for pose in poses]


def _file_poses(path: Path, xrays: Sequence[XRay]) -> list[np.ndarray]:
    """Each X-ray's pose from a geometry file: matched by X-ray file name, or in order."""
    if not path.is_file():
        raise XvrInputError(f"--geometry {path}: no such file; give 'dicom' or {GEOMETRY_HELP}")
    data = read_json(path, "--geometry")
    entries = data.get("views") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise XvrInputError(f"--geometry {path}: expected {GEOMETRY_HELP}")
    named = {xray_stem(e["xray"]): e for e in entries if isinstance(e.get("xray"), str)}
    poses = []
    for index, xray in enumerate(xrays):
        stem = xray_stem(xray.path) if xray.path else None
        entry = named.get(stem or "") if named else (entries[index] if index < len(entries) else None)
        if entry is None:
            raise XvrInputError(
                f"--geometry {path}: no pose for the X-ray {stem or index}; give one entry per X-ray"
            )
        pose = entry.get("pose", entry)
        try:
            matrix = pose_from_matrix(pose["matrix"]) if "matrix" in pose else pose_from_dict(pose)
        except (KeyError, TypeError, ValueError, XvrInputError) as err:
            raise XvrInputError(f"--geometry {path}: the pose of {stem or index}: {err}") from err
        poses.append(matrix.matrix[0].double().numpy())
    return poses


def joint_init(
    initializer: Callable[[XRay], RigidTransform],
    xrays: Sequence[XRay],
    relatives: Sequence[np.ndarray],
    init_view: int = 0,
) -> RigidTransform:
    """The first view's start from `initializer` applied to view `init_view` (any view: e.g. the
    one a pose model was trained for)."""
    if not 0 <= init_view < len(xrays):
        raise XvrInputError(
            f"--init_view {init_view}: give 0 to {len(xrays) - 1} (the index of "
            "the X-ray the initial pose is for)"
        )
    pose = initializer(xrays[init_view]).matrix[0].double().cpu().numpy()
    return pose_from_matrix(pose @ np.linalg.inv(relatives[init_view]))


def joint_name(paths: Sequence[Path]) -> str:
    """A joint result's folder name: the first X-ray's stem and the view count."""
    return f"{xray_stem(paths[0])}_joint{len(paths)}"


def register_joint_files(
    xrays: Sequence,
    spec: VolumeSpec,
    initializer: Callable[[XRay], RigidTransform],
    outpath,
    options: RegistrationOptions | None = None,
    preprocessing: Preprocessing | None = None,
    intrinsic_overrides: dict | None = None,
    pattern: str = "*.dcm",
    geometry="dicom",
    init_view: int = 0,
    *,
    init_only: bool = False,
    outputs: Outputs | None = None,
    checks: RunChecks | None = None,
    stop: StopToken | None = None,
) -> Iterator:
    """Register all of `xrays` jointly and write ``outpath/<stem>_joint<N>/`` (the joint result,
    and ``views/<k>_<stem>/`` per view); yields the engine's and pipeline's events. `outputs` and
    `checks` as :func:`.pipeline.register_files`' (a joint registration has no mirror check)."""
    options = options or RegistrationOptions()
    preprocessing = preprocessing or Preprocessing()
    outputs = outputs or Outputs()
    paths = collect_xrays(xrays, pattern)
    views = [read_xray(p, preprocessing.reducefn, **(intrinsic_overrides or {})) for p in paths]
    relatives = relative_poses(views, geometry, spec.orientation)
    init = joint_init(initializer, views, relatives, init_view)
    outpath = Path(outpath)
    if outpath.exists() and not outpath.is_dir():
        raise XvrInputError(f"-o {outpath}: is a file; give a folder for the results")
    (target,) = plan_outputs([Path(joint_name(paths))], outpath, outputs.overwrite)
    if not init_only:
        for path, view in zip(paths, views, strict=True):
            check_stages(options, view.intrinsics, path)
    subject = spec.read()
    drr = spec.make_renderer(subject, views[0].intrinsics)
    yield XrayStarted(0, 1, paths[0])
    yield from register_xray(
        views,
        drr,
        init,
        spec,
        {**describe(initializer), "init_view": init_view, "geometry": str(geometry)},
        options,
        preprocessing,
        target,
        init_only=init_only,
        keep_images=outputs.saveimg,
        outputs=outputs,
        checks=checks,
        stop=stop,
        relatives=relatives,
    )
