"""Work run in napari thread workers: plain generators, no Qt and no layer access.

The widgets snapshot what they need from layers on the main thread (:class:`LayerSnapshot`),
start one of these generators in a ``napari.qt.threading`` worker and update layers from the
events it yields (float32 arrays, throttled). Failures are yielded as :class:`Failed` so the
widget can report them and stay usable.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import defaults
from ..errors import XvrInputError
from . import api


class _Affine:
    def __init__(self, matrix):
        self.affine_matrix = np.asarray(matrix, dtype=np.float64)


@dataclass
class LayerSnapshot:
    """What a worker may know about a layer: its name, data, metadata and world affine."""

    name: str
    data: np.ndarray
    metadata: dict
    world_affine: np.ndarray | None = None

    @classmethod
    def of(cls, layer) -> LayerSnapshot | None:
        if layer is None:
            return None
        world = api._affine(layer, None) if layer.ndim == 3 else None
        return cls(layer.name, np.asarray(layer.data), dict(layer.metadata), world)

    # duck-typing used by napari_xvr.napari.api
    @property
    def affine(self):
        return _Affine(self.world_affine)

    scale = (1.0, 1.0, 1.0)
    translate = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Failed:
    message: str
    details: str = ""


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


@dataclass(frozen=True)
class Finished:
    result: object  # RegistrationResult
    final_overlay: np.ndarray  # float32, full resolution, standardized like the live DRRs
    folder: Path | None
    init_pose: np.ndarray


def guarded(gen_func):
    """Turn exceptions of a job into a yielded :class:`Failed` event."""
    def run(*args, **kwargs):
        try:
            yield from gen_func(*args, **kwargs)
        except XvrInputError as err:
            yield Failed(str(err))
        except Exception as err:  # shown to the user, the widget stays usable
            yield Failed(f"{type(err).__name__}: {err}", traceback.format_exc())

    run.__name__ = gen_func.__name__
    run.__doc__ = gen_func.__doc__
    return run


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
                               event.params, event.matrix, _f32(latest), shape)
                itrs, sims, latest, last = [], [], None, now
        elif isinstance(event, Done):
            if itrs:  # flush what the throttle held back
                yield Progress(n_stages, n_stages, itrs[-1], tuple(itrs),
                               tuple(sims), tuple(result_params(event.result)), event.result.pose,
                               _f32(latest), shape)
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


def _f32(image):
    return None if image is None else np.ascontiguousarray(image, dtype=np.float32)


@dataclass(frozen=True)
class RenderRequest:
    """One DRR to render for the DRR and pose widget."""

    serial: int
    volume: LayerSnapshot
    labels: LayerSnapshot | None
    label_ids: str
    orientation: str
    intrinsics: object  # Intrinsics
    matrix: np.ndarray  # 4x4 pose
    outline: bool = True


@dataclass(frozen=True)
class Rendered:
    serial: int
    drr: np.ndarray  # float32 (H, W)
    outline: object  # CarmOutline or None
    intrinsics: object


@guarded
def render_requests(request: RenderRequest, cache: dict):
    """Render one request, reusing the DRR module in `cache` when the inputs are unchanged."""
    from ..render import set_intrinsics

    key = (id(request.volume.data), request.volume.world_affine.tobytes(),
           None if request.labels is None else id(request.labels.data), request.label_ids,
           request.orientation)
    drr = cache.get(key)
    if drr is None:
        cache.clear()
        drr = api.make_renderer(request.volume, request.intrinsics, request.labels,
                                request.label_ids or None, request.orientation)
        cache[key] = drr
    else:
        set_intrinsics(drr, request.intrinsics)
    image = api.render_drr(request.volume, request.matrix, request.intrinsics, drr=drr)
    outline = api.carm_outline(drr, request.matrix) if request.outline else None
    yield Rendered(request.serial, image, outline, request.intrinsics)


@dataclass(frozen=True)
class Evaluated:
    errors: object  # napari_xvr.evaluate.Errors
    true_mm: np.ndarray  # (N, 2) projections (row, col) in mm under the true pose
    pred_mm: np.ndarray  # same under the estimated pose


@guarded
def evaluation(true_pose, pred_pose, fiducials: np.ndarray, intrinsics, orientation: str):
    """mTRE/mPE/mRPE and the fiducials' projections under both poses."""
    errors = api.evaluate_layers(true_pose, pred_pose, fiducials, intrinsics, orientation)
    yield Evaluated(errors, api.project_points(true_pose, fiducials, intrinsics, orientation),
                    api.project_points(pred_pose, fiducials, intrinsics, orientation))


@dataclass(frozen=True)
class Replayed:
    frames: np.ndarray  # (T, h, w) float32, standardized
    itrs: tuple[int, ...]
    done: int
    total: int


@guarded
def replay(volume: LayerSnapshot, labels: LayerSnapshot | None, label_ids: str, orientation: str,
           intrinsics, trajectory: list[dict], n_frames: int = 30, max_size: int = 128):
    """DRRs along an optimisation trajectory (a time axis for the overlay)."""
    from ..geometry import pose_from_zxy
    from ..render import render

    if not trajectory:
        raise XvrInputError("this X-ray has no trajectory; register it first (or open a result folder)")
    scale = min(1.0, max_size / max(intrinsics.height, intrinsics.width))
    small = intrinsics.rescaled(scale) if scale < 1 else intrinsics
    drr = api.make_renderer(volume, small, labels, label_ids or None, orientation)
    picks = np.unique(np.linspace(0, len(trajectory) - 1, min(n_frames, len(trajectory))).round()
                      .astype(int))
    frames = []
    for count, index in enumerate(picks, start=1):
        row = trajectory[index]
        pose = pose_from_zxy([row["r1"], row["r2"], row["r3"]], [row["tx"], row["ty"], row["tz"]])
        frames.append(standardized(render(drr, pose)[0, 0].cpu().numpy()))
        if count % 5 == 0 or count == len(picks):
            yield Replayed(np.stack(frames), tuple(int(i) for i in picks[:count]), count, len(picks))


@dataclass(frozen=True)
class TrainProgress:
    """Throttled training progress: losses since the last event and an optional mosaic."""

    itrs: tuple[int, ...]
    losses: tuple[float, ...]
    itr: int
    n_total_itrs: int
    step_time_s: float
    mosaic: np.ndarray | None  # (2H, N*W) float32: sampled DRRs on top, predicted poses below


def merge_progress(earlier, later):
    """Two queued progress events as one (values appended, the latest image kept), or None when
    they are not both progress of the same kind: the GUI then handles them in order."""
    from dataclasses import replace

    if isinstance(earlier, Progress) and isinstance(later, Progress):
        keep_new = later.drr is not None
        return replace(later, itrs=earlier.itrs + later.itrs,
                       similarities=earlier.similarities + later.similarities,
                       drr=later.drr if keep_new else earlier.drr,
                       stage_shape=later.stage_shape if keep_new else earlier.stage_shape)
    if isinstance(earlier, TrainProgress) and isinstance(later, TrainProgress):
        return replace(later, itrs=earlier.itrs + later.itrs, losses=earlier.losses + later.losses,
                       mosaic=later.mosaic if later.mosaic is not None else earlier.mosaic)
    return None


def mosaic(drr: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Sample DRRs in the top row, the DRRs of the predicted poses below, each min-max scaled."""
    def row(images):
        return np.concatenate([_unit(img) for img in images], axis=1)

    return np.concatenate([row(drr), row(pred)], axis=0).astype(np.float32)


def _unit(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, dtype=np.float32)
    return (img - img.min()) / (img.max() - img.min() + 1e-6)


@guarded
def training(config=None, stop=None, resume_from=None, min_interval_s: float = 0.3,
             overrides: dict | None = None):
    """Run (or resume) training; yields TrainStarted, TrainProgress, Checkpointed, TrainDone.

    A resume continues the run in `resume_from` with `overrides` (e.g. a larger
    ``n_total_itrs``) applied to its stored config, as ``xvr restart --n_total_itrs`` does.
    """
    from ..train import Checkpointed, TrainDone, TrainStarted, TrainStep, restart, train

    if resume_from is not None:
        events = restart(resume_from, stop, **(overrides or {}))
    else:
        events = train(config, stop)
    itrs, losses, last, image, total = [], [], 0.0, None, 0
    times: list[float] = []
    for event in events:
        if isinstance(event, TrainStep):
            itrs.append(event.itr)
            losses.append(event.loss)
            times.append(event.time_s)
            if event.drr is not None and event.pred is not None:
                image = mosaic(event.drr, event.pred)
            now = time.perf_counter()
            if now - last >= min_interval_s or image is not None:
                yield TrainProgress(tuple(itrs), tuple(losses), event.itr, total,
                                    float(np.mean(times[-20:])), image)
                itrs, losses, image, last = [], [], None, now
        elif isinstance(event, TrainStarted | Checkpointed):
            total = getattr(event, "n_total_itrs", total)
            yield event
        elif isinstance(event, TrainDone):
            if itrs:
                yield TrainProgress(tuple(itrs), tuple(losses), itrs[-1], total,
                                    float(np.mean(times[-20:])), image)
            yield event
