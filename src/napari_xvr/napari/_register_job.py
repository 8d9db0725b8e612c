"""The Register widget's job: one X-ray registered in a worker, progress throttled."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..imaging import STANDARD_RANGE, standardize
from ..register import Done, Preprocessing, RegistrationOptions, Stage, Step
from ..register.mirror import MirrorCheck
from ..register.pipeline import Retrying, VolumeSpec, Written, describe, register_xray
from . import api
from ._jobs import LayerSnapshot, f32, guarded


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

    def merged(self, later: Progress) -> Progress:
        """This and a later event as one: values appended, the latest image kept."""
        keep_new = later.drr is not None
        return replace(later, itrs=self.itrs + later.itrs,
                       similarities=self.similarities + later.similarities,
                       drr=later.drr if keep_new else self.drr,
                       stage_shape=later.stage_shape if keep_new else self.stage_shape)


@dataclass(frozen=True)
class Finished:
    result: object  # RegistrationResult
    final_overlay: np.ndarray  # float32, full resolution, standardized like the live DRRs
    folder: Path | None
    init_pose: np.ndarray


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
    make_initializer: Callable[[], object]  # called in the worker: a model loads there
    options: RegistrationOptions
    preprocessing: Preprocessing
    target: Path | None = None  # the result folder (decided at the click), None: not saved
    saveimg: bool = False
    mirror_check: bool = True
    retry_starts: int = 0  # --multistart auto's retry
    min_interval_s: float = 0.2

    @property
    def xray_name(self) -> str:
        return str(self.xray.metadata.get("path") or self.xray.name)


@guarded
def registration(job: RegisterJob, stop):
    """Register the job's X-ray with the core's :func:`register_xray`; yields Stage, Progress,
    Finished (or Failed)."""
    xray = api.xray_from_layer(job.xray, None, job.preprocessing.reducefn)
    initializer = job.make_initializer()
    spec = job.spec
    flip = getattr(initializer, "reverse_x_axis", None)  # a model's convention, when it has one
    if flip is not None and bool(flip) != spec.reverse_x_axis:
        spec = replace(spec, reverse_x_axis=bool(flip))
    init = initializer(xray)
    subject = api.subject_from_layers(job.volume, job.labels, spec.labels, spec.orientation)
    drr = spec.make_renderer(subject, xray.intrinsics)
    itrs, sims, latest, last = [], [], None, 0.0
    n_stages = len(job.options.scale_list())
    shape = (xray.intrinsics.height, xray.intrinsics.width)
    result, folder = None, None
    for event in register_xray(xray, drr, init, spec, describe(initializer), job.options,
                               job.preprocessing, job.target, keep_images=True,
                               saveimg=job.saveimg, stop=stop, xray_name=job.xray_name,
                               mirror_check=job.mirror_check, retry_starts=job.retry_starts):
        if isinstance(event, Stage):
            shape = (event.height, event.width)
            yield event
        elif isinstance(event, Step):
            itrs.append(event.total_itr)
            sims.append(event.similarity)
            latest = event.drr if event.drr is not None else latest
            now = time.perf_counter()
            if now - last >= job.min_interval_s:
                yield Progress(event.stage, n_stages, event.total_itr, tuple(itrs), tuple(sims),
                               event.params, event.matrix, f32(latest), shape)
                itrs, sims, latest, last = [], [], None, now
        elif isinstance(event, Done):
            result = event.result
            if itrs:  # flush what the throttle held back
                yield Progress(n_stages, n_stages, itrs[-1], tuple(itrs), tuple(sims),
                               tuple(result_params(result)), result.pose, f32(latest), shape)
        elif isinstance(event, Written):
            folder = event.path
        elif isinstance(event, MirrorCheck | Retrying):
            yield event
    final = result.images.get("final_drr")
    overlay = standardized(final) if final is not None else None
    yield Finished(result, overlay, folder, result.init_pose)


def result_params(result) -> tuple[float, ...]:
    from ..geometry import pose_from_matrix, pose_to_zxy

    rot, xyz = pose_to_zxy(pose_from_matrix(result.pose))
    return tuple(float(v) for v in (*rot, *xyz))
