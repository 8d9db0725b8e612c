"""The Register widget's job: one X-ray registered in a worker, progress throttled."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from ..imaging import STANDARD_RANGE, standardize
from ..register import Done, Preprocessing, RegistrationOptions, Stage, Step
from ..register.checks.mirror import MirrorCheck
from ..register.checks.setup_check import SetupCheck
from ..register.options import Outputs, RunChecks
from ..register.resolve import resolve_spec
from ..register.volume_spec import VolumeSpec
from ..register.workflows.joint import joint_init, relative_poses
from ..register.workflows.one_xray import Retrying, Written, register_xray
from ..register.workflows.pipeline import describe
from . import api
from ._jobs import LayerSnapshot, f32, guarded

if TYPE_CHECKING:
    from diffdrr.pose import RigidTransform

    from ..io.xray import XRay


@dataclass(frozen=True)
class Progress:
    """Throttled registration progress: new similarity values since the last event."""

    stage: int
    n_stages: int
    total_itr: int
    itrs: tuple[int, ...]
    similarities: tuple[float, ...]
    params: tuple[float, ...]
    matrix: np.ndarray
    drr: np.ndarray | None  # standardized float32 at the stage's resolution
    stage_shape: tuple[int, int]
    view_drrs: tuple = ()  # a joint registration: every view's latest DRR (the first is `drr`)

    def merged(self, later: Progress) -> Progress:
        """This and a later event as one: values appended, the latest images kept."""
        keep_new = later.drr is not None
        return replace(
            later,
            itrs=self.itrs + later.itrs,
            similarities=self.similarities + later.similarities,
            drr=later.drr if keep_new else self.drr,
            stage_shape=later.stage_shape if keep_new else self.stage_shape,
            view_drrs=later.view_drrs if keep_new else self.view_drrs,
        )


@dataclass(frozen=True)
class JointGeometry:
    """A joint registration's views: each one's 4x4 pose relative to the first's
    (``pose_k = pose @ relatives[k]``), for the views' orientation letters."""

    relatives: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Finished:
    result: object  # RegistrationResult
    final_overlay: np.ndarray | None  # float32, full resolution, standardized like the live DRRs
    folder: Path | None
    init_pose: np.ndarray
    view_overlays: tuple = ()  # a joint registration: every view's final overlay


def standardized(image: np.ndarray) -> np.ndarray:
    """The engine's DRR scale (xvr's standardisation), so overlays share one contrast."""
    return np.asarray(standardize(np.asarray(image, dtype=np.float32)), dtype=np.float32)


OVERLAY_CONTRAST = tuple(round(v, 6) for v in STANDARD_RANGE)  # (-1.5, 8.5)


@dataclass
class RegisterJob:
    """Everything one registration needs, captured on the main thread: layer snapshots and the
    core's own option objects (the widget only maps its controls to them)."""

    xray: LayerSnapshot
    volume: LayerSnapshot
    labels: LayerSnapshot | None
    spec: VolumeSpec  # volume, labels, orientation and renderer options as the CLI's
    make_initializer: Callable[[], Callable[[XRay], RigidTransform]]  # called in the worker (a model loads)
    options: RegistrationOptions
    preprocessing: Preprocessing
    target: Path | None = None  # the result folder (decided at the click), None: not saved
    outputs: Outputs = field(default_factory=Outputs)  # saveimg (overwrite: planned at the click)
    checks: RunChecks = field(default_factory=RunChecks)  # mirror check, retry (--multistart auto)
    min_interval_s: float = 0.2
    views: tuple[LayerSnapshot, ...] = ()  # more X-rays: a joint registration with them
    explicit: frozenset = frozenset()  # spec fields the user set (else a model/result's win)

    @property
    def xray_name(self) -> str:
        return str(self.xray.metadata.get("path") or self.xray.name)


def _xrays(job: RegisterJob) -> list:
    """The job's X-ray(s) from their snapshots; views of a joint run named by their layers."""
    xrays = [api.xray_from_layer(s, None, job.preprocessing.reducefn) for s in (job.xray, *job.views)]
    if not job.views:
        return xrays
    return [
        dataclasses.replace(x, path=Path(str(s.metadata.get("path") or s.name)))
        for x, s in zip(xrays, (job.xray, *job.views), strict=True)
    ]


@guarded
def registration(job: RegisterJob, stop):
    """Register the job's X-ray (with its views: jointly) with the core's :func:`register_xray`;
    yields (JointGeometry,) Stage, Progress, Finished (or Failed)."""
    xrays = _xrays(job)
    xray = xrays[0]
    initializer = job.make_initializer()
    spec, _notes = resolve_spec(job.spec, initializer, job.explicit)  # the CLI's rule
    relatives = None
    if job.views:  # the views' geometry from their headers, as `xvr register --joint`
        relatives = relative_poses(xrays, "dicom", spec.orientation)
        yield JointGeometry(tuple(np.asarray(r, dtype=np.float64) for r in relatives))
        init = joint_init(initializer, xrays, relatives)
    else:
        init = initializer(xray)
    subject = api.subject_from_layers(job.volume, job.labels, spec.labels, spec.orientation)
    drr = spec.make_renderer(subject, xray.intrinsics)
    itrs, sims, latest, latest_views, last = [], [], None, (), 0.0
    n_stages = len(job.options.scale_list())
    shape = (xray.intrinsics.height, xray.intrinsics.width)
    result, folder = None, None
    initialization = describe(initializer)
    if job.views:
        initialization |= {"init_view": 0, "geometry": "dicom"}
    for event in register_xray(
        xrays if job.views else xray,
        drr,
        init,
        spec,
        initialization,
        job.options,
        job.preprocessing,
        job.target,
        keep_images=True,
        outputs=job.outputs,
        checks=job.checks,
        stop=stop,
        xray_name=job.xray_name,
        relatives=relatives,
    ):
        if isinstance(event, Stage):
            shape = (event.height, event.width)
            yield event
        elif isinstance(event, Step):
            itrs.append(event.total_itr)
            sims.append(event.similarity)
            latest = event.drr if event.drr is not None else latest
            latest_views = event.view_drrs or latest_views
            now = time.perf_counter()
            if now - last >= job.min_interval_s:
                yield Progress(
                    event.stage,
                    n_stages,
                    event.total_itr,
                    tuple(itrs),
                    tuple(sims),
                    event.params,
                    event.matrix,
                    f32(latest),
                    shape,
                    tuple(f32(d) for d in latest_views) if latest is not None else (),
                )
                itrs, sims, latest, latest_views, last = [], [], None, (), now
        elif isinstance(event, Done):
            result = event.result
            if itrs:  # flush what the throttle held back
                yield Progress(
                    n_stages,
                    n_stages,
                    itrs[-1],
                    tuple(itrs),
                    tuple(sims),
                    tuple(result_params(result)),
                    result.pose,
                    f32(latest),
                    shape,
                    # (the cast: mypy takes the loop's `latest_views = ()` for an empty tuple's type)
                    tuple(f32(d) for d in cast("tuple[np.ndarray, ...]", latest_views))
                    if latest is not None
                    else (),
                )
        elif isinstance(event, Written):
            folder = event.path
        elif isinstance(event, MirrorCheck | SetupCheck | Retrying):
            yield event
    assert result is not None  # register_xray ends with Done (the engine's run always does)
    final = result.images.get("final_drr")
    overlay = standardized(final) if final is not None else None
    views = tuple(
        standardized(v["images"]["final_drr"])
        for v in result.views or ()
        if v.get("images", {}).get("final_drr") is not None
    )
    yield Finished(result, overlay, folder, result.init_pose, views)


def result_params(result) -> tuple[float, ...]:
    from ..geometry import pose_from_matrix, pose_to_zxy

    rot, xyz = pose_to_zxy(pose_from_matrix(result.pose))
    return tuple(float(v) for v in (*rot, *xyz))
