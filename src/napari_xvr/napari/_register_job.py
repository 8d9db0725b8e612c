"""The Register widget's job: one X-ray registered in a worker, progress throttled."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import defaults
from ..errors import XvrInputError
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
    """Min-max then (x - 0.15) / 0.1: the engine's DRR scale, so overlays share one contrast."""
    img = np.asarray(image, dtype=np.float32)
    img = (img - img.min()) / (img.max() - img.min() + 1e-6)
    return ((img - 0.15) / 0.1).astype(np.float32)


OVERLAY_CONTRAST = (-1.5, 8.5)


@dataclass
class RegisterJob:
    """Everything one registration needs, captured on the main thread."""

    xray: LayerSnapshot
    volume: LayerSnapshot
    labels: LayerSnapshot | None = None
    label_ids: str = ""
    orientation: str = "AP"
    init: tuple = ("pose", None)  # ("pose", 4x4) | ("dicom",) | ("result", path) | ("checkpoint", path)
    options: object = None  # RegistrationOptions
    preprocessing: object = None  # Preprocessing
    renderer: str = defaults.reg("renderer")
    reverse_x_axis: bool = defaults.reg("reverse_x_axis")
    device: str = defaults.reg("device")
    outdir: Path | None = None
    saveimg: bool = False
    min_interval_s: float = 0.2
    inputs: dict = field(default_factory=dict)


def initial_pose(job: RegisterJob, xray):
    """The initial pose the job asks for (may run a model: call from the worker)."""
    from ..register import DicomInitializer, PoseInitializer, RestartInitializer

    kind = job.init[0]
    if kind == "pose":
        return PoseInitializer(job.init[1])(xray), {"type": "pose"}
    if kind == "dicom":
        init = DicomInitializer(job.orientation)
        return init(xray), init.describe()
    if kind == "result":
        init = RestartInitializer(Path(job.init[1]))
        return init(xray), init.describe()
    if kind == "checkpoint":
        return checkpoint_pose(job, xray)
    raise XvrInputError(f"unknown initialisation {kind!r}")


def checkpoint_pose(job: RegisterJob, xray):
    """Pose predicted by a trained model checkpoint (napari_xvr.train's ModelInitializer)."""
    from ..train.model_init import ModelInitializer

    path = Path(str(job.init[1] or ""))
    if not path.is_file():
        raise XvrInputError(f"checkpoint {job.init[1]!r}: choose a model checkpoint file")
    volume = job.inputs.get("volume")
    init = ModelInitializer(
        path, volume=Path(volume) if volume and Path(volume).exists() else None,
        crop=job.options.crop, subtract_background=job.preprocessing.subtract_background,
        linearize=job.preprocessing.linearize, device=job.device,
    )
    return init(xray), init.describe()


@guarded
def registration(job: RegisterJob, stop):
    """Run the engine for `job`; yields Stage, Progress, Finished (or Failed)."""
    from ..register import Done, Stage, Step, register, write_result

    xray = api.xray_from_layer(job.xray, None, job.preprocessing.reducefn)
    init, described = initial_pose(job, xray)
    drr = api.make_renderer(job.volume, xray.intrinsics, job.labels, job.label_ids or None,
                            job.orientation, job.renderer, job.device,
                            reverse_x_axis=job.reverse_x_axis)
    itrs, sims, latest, last = [], [], None, 0.0
    n_stages = len(job.options.scale_list())
    shape = (xray.intrinsics.height, xray.intrinsics.width)
    for event in register(xray, drr, init, job.options, job.preprocessing, keep_images=True,
                          stop=stop, inputs=job.inputs, initialization=described):
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
            if itrs:  # flush what the throttle held back
                yield Progress(n_stages, n_stages, itrs[-1], tuple(itrs),
                               tuple(sims), tuple(result_params(event.result)), event.result.pose,
                               f32(latest), shape)
            result = event.result
            final = result.images.get("final_drr")
            folder = None
            if job.outdir is not None:
                from ..register.pipeline import plan_outputs

                target = plan_outputs([Path(job.xray.name)], Path(job.outdir), overwrite=True)[0]
                folder = write_result(result, target, job.saveimg)
            overlay = standardized(final) if final is not None else None
            yield Finished(result, overlay, folder, result.init_pose)


def result_params(result) -> tuple[float, ...]:
    from ..geometry import pose_from_matrix, pose_to_zxy

    rot, xyz = pose_to_zxy(pose_from_matrix(result.pose))
    return tuple(float(v) for v in (*rot, *xyz))
