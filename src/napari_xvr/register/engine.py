"""The registration engine: one generator of progress events for the CLI, napari and scripts.

Multiscale test-time optimisation as in xvr.  At each scale, either Levenberg-Marquardt on the
six pose parameters (default, :mod:`.lm`: 3-10 evaluations per scale) or xvr's Adam with separate
step sizes for rotation and translation, ReduceLROnPlateau, and a plateau count that moves on
to the next scale.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from diffdrr.pose import RigidTransform, convert
from torch.nn.functional import interpolate

from ..errors import XvrInputError
from ..geometry import Intrinsics, pose_to_dict, pose_to_zxy
from ..io.xray import XRay, crop_intrinsics
from ..render import set_intrinsics
from .events import Done, Stage, Step
from .fit import Fit, similarity_ceiling
from .fov import explained_pixels, volume_cut_faces
from .lm import LMView, PoseLM
from .masking import masked_fraction, stage_mask, valid_mask
from .multistart import start_poses
from .options import RegistrationOptions
from .result import RegistrationResult
from .similarity import Similarity, soft_equalize, standardize
from .uncertainty import KAPPA, batched_mtre, pose_uncertainty, volume_points


class StopToken:
    """Thread-safe flag: `stop()` ends a run after the current iteration, keeping its best pose."""

    def __init__(self):
        self._event = threading.Event()

    def stop(self) -> None:
        self._event.set()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()


@dataclass
class Preprocessing:
    """X-ray preprocessing as the reference (crop is in RegistrationOptions)."""

    subtract_background: bool = False
    linearize: bool = False
    reducefn: str | int = "max"


MIN_STAGE_PX = 16  # the coarsest detector: below this the NCC patches see nothing


def stage_intrinsics(full: Intrinsics, scale: float, crop: int) -> Intrinsics:
    """Detector of a stage: `scale` is relative to the uncropped X-ray, as in xvr."""
    factor = (full.height + crop) / (scale * full.height)
    return full.rescaled(factor)


def check_stages(options: RegistrationOptions, intrinsics: Intrinsics, where="the X-ray") -> None:
    """Refuse, before any work, scales that leave the coarsest detector under 16 pixels."""
    full = crop_intrinsics(intrinsics, options.crop)
    scale = max(s for s, _ in options.scale_list())
    coarse = stage_intrinsics(full, scale, options.crop)
    if min(coarse.height, coarse.width) < max(MIN_STAGE_PX, options.patch_size):
        raise XvrInputError(
            f"{where}: --scales {options.scales} shrinks its {full.height} x {full.width} px "
            f"detector to {coarse.height} x {coarse.width} px at scale {scale:g}; the coarsest "
            f"stage needs at least {max(MIN_STAGE_PX, options.patch_size)} px: give smaller "
            "scales (e.g. --scales 4,2,1)"
        )


def check_view(
    drr, pose: RigidTransform, options: RegistrationOptions, intrinsics: Intrinsics, where="the X-ray"
) -> None:
    """Refuse a start whose DRR (at the coarsest scale) is blank or flat: the volume is not in view.

    Such a start has nothing to register to, and the similarity of a flat image is noise.
    """
    full = crop_intrinsics(intrinsics, options.crop)
    coarse = stage_intrinsics(full, max(s for s, _ in options.scale_list()), options.crop)
    matrix = pose.matrix.to(drr.device, torch.float32)
    set_intrinsics(drr, coarse)
    with torch.no_grad():
        image = drr(RigidTransform(matrix)).double()
    peak = float(image.abs().max()) if image.numel() else 0.0
    spread = float(image.std()) if image.numel() > 1 else 0.0
    if not (math.isfinite(peak) and math.isfinite(spread)) or peak <= 0 or spread <= 1e-6 * peak:
        rot, xyz = pose_to_zxy(pose)
        what = "blank" if not peak > 0 else "flat"
        raise XvrInputError(
            f"{where}: the DRR at the initial pose (rot {_fmt(rot)} deg, xyz {_fmt(xyz)} mm) is "
            f"{what}: the volume is not in this X-ray's field of view. Check the initial pose "
            "(--rot/--xyz, the DICOM header or the model), --orientation and the intrinsics "
            "(--sdd, --delx, --dely, --x0, --y0)"
        )


def _fmt(values) -> str:
    return ",".join(f"{v + 0.0:.4g}" for v in values)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _params(pose: RigidTransform, options: RegistrationOptions):
    rot, xyz = pose.convert(options.parameterization, options.convention)
    return (torch.nn.Parameter(rot.detach().clone()), torch.nn.Parameter(xyz.detach().clone()))


def _pose(rot, xyz, options: RegistrationOptions) -> RigidTransform:
    if options.parameterization == "euler_angles":
        return convert(rot, xyz, parameterization="euler_angles", convention=options.convention)
    return convert(rot, xyz, parameterization=options.parameterization)


def _preparer(size: tuple[int, int], equalize: bool, valid: torch.Tensor | None = None):
    """The transform applied to the X-ray and every DRR at one stage. With `equalize`, images
    are brought to the stage's `size` first, then equalized ranking only the stage's `valid`
    pixels (what the similarity compares), so that a collimator's border or text left out of
    the comparison does not squeeze the anatomy's range."""
    if not equalize:
        return lambda x: standardize(x, size)
    mask = None if valid is None else valid[0, 0] > 0.5

    def prepare(x):
        if tuple(x.shape[-2:]) != tuple(size):
            x = interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        return standardize(soft_equalize(x, valid=mask))

    return prepare


def _leave_out(
    similarity: Similarity,
    valid: np.ndarray | None,
    intr: Intrinsics,
    scale: float,
    device,
    explained: torch.Tensor | None = None,
) -> int:
    """Set the stage's mask on `similarity` (the X-ray's valid pixels, and those the CT can
    explain); returns the stage's pixels that count."""
    if valid is None and explained is None:
        similarity.leave_out(None)
        return intr.height * intr.width
    stage_valid = explained if valid is None else stage_mask(valid, (intr.height, intr.width)).to(device)
    if explained is not None:
        stage_valid = stage_valid & explained.to(device)
    similarity.leave_out(stage_valid)
    if not similarity.weight("windows").any():
        raise EmptyStage(
            f"--xray_mask: at scale {scale:g} ({intr.height} x {intr.width} px) every "
            f"{similarity.patch_size} x {similarity.patch_size} window touches a left-out pixel "
            f"({100 * (1 - float(stage_valid.float().mean())):.0f} % of the X-ray is left out: "
            "collimated, annotated or beyond the CT's ends): give smaller "
            "scales (e.g. --scales 4,2,1) or pass --xray_mask off"
        )
    return int(stage_valid.sum())


class EmptyStage(XvrInputError):
    """At one scale, every similarity window touches a left-out pixel: that scale is skipped
    (an error only when no scale is left)."""


MIN_EXPLAINED = 0.1
"""The CT's field of view is not used at a stage where it would leave less than this share of
the X-ray (a start far off, whose rays miss the CT)."""


def _xray_mask(img: torch.Tensor, options: RegistrationOptions) -> np.ndarray | None:
    """The X-ray's valid pixels under `options.xray_mask` (None: every pixel counts)."""
    if options.xray_mask == "off":
        return None
    valid = valid_mask(img[0, 0].detach().cpu().double().numpy())
    if not valid.any():
        raise XvrInputError(
            f"--xray_mask {options.xray_mask} leaves no pixel of the X-ray to "
            "compare (it is "
            "constant or saturated everywhere): check the image, or pass "
            "--xray_mask off"
        )
    return valid


def _row(stage, itr, pose, similarity, elapsed, lrs, start) -> dict:
    rot, xyz = pose_to_zxy(pose)
    return {
        "stage": stage,
        "itr": itr,
        "r1": rot[0],
        "r2": rot[1],
        "r3": rot[2],
        "tx": xyz[0],
        "ty": xyz[1],
        "tz": xyz[2],
        "similarity": similarity,
        "time": elapsed,
        "lr_rot": lrs[0],
        "lr_xyz": lrs[1],
        "start": start,
    }


@dataclass
class _View:
    """One X-ray of a registration: its preprocessed image, detector, valid pixels, similarity
    and, in a joint registration, where its camera sits relative to the optimised (first) one."""

    xray: XRay
    img: torch.Tensor
    full: Intrinsics
    valid: np.ndarray | None
    similarity: Similarity
    relative: torch.Tensor | None = None  # (4, 4): this view's pose = pose @ relative

    def pose(self, pose: RigidTransform) -> RigidTransform:
        if self.relative is None:
            return pose
        return RigidTransform(pose.matrix @ self.relative.to(pose.matrix))


def _views(xrays: list[XRay], relatives, options, preprocessing, device, init_only) -> list[_View]:
    views = []
    for index, xray in enumerate(xrays):
        img = xray.preprocessed(options.crop, preprocessing.subtract_background, preprocessing.linearize).to(
            device, torch.float32
        )
        relative = None
        if index and relatives is not None:
            relative = torch.as_tensor(np.asarray(relatives[index]), dtype=torch.float32, device=device)
        views.append(
            _View(
                xray,
                img,
                crop_intrinsics(xray.intrinsics, options.crop),
                None if init_only else _xray_mask(img, options),
                Similarity(options.patch_size, options.sigma, options.similarity_beta).to(device),
                relative,
            )
        )
    return views


def _stage_views(
    views: list[_View], drr, scale: float, options, device, pose: RigidTransform, faces: list
) -> tuple[list, int]:
    """Every view's :class:`LMView` at one scale, and the pixels that enter the similarity: with
    the CT's cut `faces`, only those whose rays at `pose` stay clear of them (:mod:`.fov`).
    One view renders with the detector set on `drr` here; several set their own per render."""
    stage, pixels = [], 0
    for view in views:
        intr = stage_intrinsics(view.full, scale, options.crop)
        explained = None
        if faces:
            set_intrinsics(drr, intr)
            explained = explained_pixels(drr, view.pose(pose), faces)
            if explained is not None and float(explained.float().mean()) < MIN_EXPLAINED:
                explained = None
        pixels += _leave_out(view.similarity, view.valid, intr, scale, device, explained)
        prep = _preparer((intr.height, intr.width), options.equalize, view.similarity.weight("pixels"))
        stage.append(
            LMView(prep(view.img), prep, view.similarity, intr if len(views) > 1 else None, view.relative)
        )
    set_intrinsics(drr, stage_intrinsics(views[0].full, scale, options.crop))
    return stage, pixels


def register(
    xray: XRay | list[XRay],
    drr,
    init_pose: RigidTransform,
    options: RegistrationOptions | None = None,
    preprocessing: Preprocessing | None = None,
    init_only: bool = False,
    keep_images: bool = False,
    stop: StopToken | None = None,
    inputs: dict | None = None,
    initialization: dict | None = None,
    hessian: tuple | None = None,
    relatives: list | None = None,
    trust_hessian: bool = False,
    check_start: bool = True,
) -> Iterator[Stage | Step | Done]:
    """Register `xray` to the volume inside `drr`, starting at `init_pose`.

    Yields :class:`Stage` when a resolution begins, :class:`Step` every iteration and finally
    :class:`Done` with the :class:`RegistrationResult`.  ``stop.stop()`` (from another thread)
    or closing the generator ends it early; a stopped run still yields Done with its best pose.
    `hessian` (LM) starts the first scale from an earlier run's ``result.hessian`` instead of a
    new one (tracking: the previous frame's); the result keeps its last one, and
    ``result.hessian_fresh`` says whether it was computed in this run. With `trust_hessian`
    (tracking, from a recent frame's Hessian at the same scale) LM's convergence test and the
    uncertainty use that Hessian without a new one. ``check_start=False`` skips the
    blank-view check of the start (tracking: the previous frame's pose, checked, is close).

    Joint registration: `xray` a list of X-rays of one patient position and `relatives` each
    one's 4x4 camera pose relative to the first (``pose_k = pose @ relatives[k]``; the first is
    the identity). One pose (the first view's) is optimised against all of them, the
    similarity the mean of theirs; ``result.views`` holds each view's pose and similarity.
    """
    options = options or RegistrationOptions()
    preprocessing = preprocessing or Preprocessing()
    stop = stop or StopToken()
    device = drr.device
    dtype = torch.float32
    t_start = time.perf_counter()
    xrays = list(xray) if isinstance(xray, list | tuple) else [xray]
    if relatives is not None and len(relatives) != len(xrays):
        raise XvrInputError(
            f"{len(xrays)} X-rays but {len(relatives)} relative poses: give one "
            "per X-ray (the first the identity)"
        )
    for view_xray in xrays if not init_only else ():
        check_stages(options, view_xray.intrinsics, view_xray.path or "the X-ray")
    views = _views(xrays, relatives, options, preprocessing, device, init_only)
    init_pose = RigidTransform(init_pose.matrix.to(device, dtype))
    if check_start and not init_only:  # --init_only reports the start itself, whatever it shows
        for view in views:
            check_view(
                drr, view.pose(init_pose), options, view.xray.intrinsics, view.xray.path or "the X-ray"
            )
    first = views[0]
    result = RegistrationResult(
        init_pose=init_pose.matrix[0].detach().cpu().double().numpy(),
        final_pose=None,
        intrinsics=first.full,
        inputs=dict(inputs or {}),
        preprocessing={"crop": options.crop, **preprocessing.__dict__},
        options={**options.to_dict(), "init_only": init_only},
        initialization=dict(initialization or {}),
    )
    if first.valid is not None:
        fractions = [masked_fraction(view.valid) for view in views]
        result.checks["xray_mask"] = {"rule": options.xray_mask, "masked_fraction": fractions[0]}
        if len(views) > 1:
            result.checks["xray_mask"]["view_masked_fractions"] = fractions
    stages = options.scale_list()
    if keep_images:
        result.images["xray"] = first.img[0, 0].cpu().numpy()
        set_intrinsics(drr, first.full)
        with torch.no_grad():
            result.images["init_drr"] = drr(init_pose)[0, 0].float().cpu().numpy()

    if init_only or not stages:
        result.runtime_s = time.perf_counter() - t_start
        _joint_views(result, views, drr, init_pose, init_pose, None, keep_images)
        yield Done(result)
        return

    run = _Run(
        options, first.similarity, stop, result, init_pose, hessian=hessian, trust_hessian=trust_hessian
    )
    faces = volume_cut_faces(drr.subject) if options.xray_mask == "auto" else []  # not "image"
    lm_views = at_optimum = None  # at_optimum: the views' similarities at the final pose
    slab_before = _set_slab(drr, options.slab_mm)
    skipped: list[tuple[float, EmptyStage]] = []
    motion: list[tuple[float, float]] = []  # (scale, mm the pose moved there)
    try:
        for stage_idx, (scale, n_itrs) in enumerate(stages, start=1):
            _set_slab(drr, options.slab_mm if scale > 1 else 0.0)  # full resolution: every slice
            try:
                lm_views, pixels = _stage_views(
                    views, drr, scale, options, device, run.best_pose or init_pose, faces
                )
            except EmptyStage as empty:
                skipped.append((scale, empty))
                if stage_idx == len(stages) and lm_views is None:
                    raise skipped[0][1] from None
                continue
            run.pixels = pixels
            entering = run.best_pose or init_pose
            if len(views) > 1 and run.best_pose is not None:
                _weigh(drr, lm_views, run.best_pose)
            intr = stage_intrinsics(first.full, scale, options.crop)
            stage = _lm_stage if options.optimizer == "lm" else _adam_stage
            if run.best_pose is None and options.multistart > 0:  # the first scale that runs
                starts = start_poses(
                    init_pose, options.multistart, options.multistart_rot, options.multistart_xyz
                )
                yield Stage(
                    stage_idx, len(stages), scale, intr.height, intr.width, n_itrs * len(starts), len(starts)
                )
                yield from _multistart(run, starts, stage, (drr, lm_views, stage_idx, n_itrs, intr))
            else:
                yield Stage(stage_idx, len(stages), scale, intr.height, intr.width, n_itrs)
                yield from stage(run, drr, lm_views, stage_idx, n_itrs, intr, run.best_pose or init_pose)
            if run.best_pose is not None:
                motion.append((scale, _moved_mm(drr, entering, run.best_pose)))
            if stop.stopped:
                break
        if not stop.stopped and run.best_pose is not None:  # at the last scale, as it ran
            if len(views) > 1:  # the weights at the optimum, for the covariance
                at_optimum = _weigh(drr, lm_views, run.best_pose)
            result.checks["uncertainty"] = _uncertainty(
                run, drr, lm_views, intr, pixels, result.inputs
            ).to_json()
            weights = _lm_solver(run, drr, lm_views, intr).weights().numpy()
            ceiling = float(
                np.dot(weights, [similarity_ceiling(v.similarity, v.fixed, v.prep) for v in lm_views])
            )
            result.checks["fit"] = Fit(float(run.best_similarity), ceiling).to_json()
            if skipped:
                result.checks["skipped_scales"] = [s for s, _ in skipped]
            if run.converged is not None and stages[-1][0] == scale:
                result.checks["convergence"] = {
                    "converged": bool(run.converged),
                    "iterations": int(run.stage_itrs),
                    "cap": int(n_itrs),
                    "scale": scale,
                }
            if motion:
                result.checks["motion_mm"] = {f"{s:g}": round(mm, 4) for s, mm in motion}
            if len(views) > 1:
                result.checks["joint_weights"] = [float(w) for w in weights]
    finally:
        final = run.best_pose or init_pose
        result.final_pose = final.matrix[0].detach().cpu().double().numpy()
        result.stopped = stop.stopped
        result.iterations = run.total_itr
        result.runtime_s = time.perf_counter() - t_start
        result.hessian = run.hessian
        result.hessian_fresh = run.hessian_fresh
        _set_slab(drr, slab_before)
    with torch.no_grad():
        view_sims = at_optimum
        if view_sims is None and (len(views) > 1 or run.best_similarity is None):
            view_sims = _view_similarities(drr, lm_views, final)
        if run.best_similarity is None:  # stopped before the first iteration
            run.best_similarity = float(np.mean(view_sims))
        result.similarity = run.best_similarity
        if keep_images:
            set_intrinsics(drr, first.full)
            result.images["final_drr"] = drr(final)[0, 0].float().cpu().numpy()
    _joint_views(result, views, drr, init_pose, final, view_sims, keep_images)
    yield Done(result)


def _moved_mm(drr, before: RigidTransform, after: RigidTransform) -> float:
    """How far a stage moved the pose: xvr's mTRE between `before` and `after` over points
    spanning the volume (:func:`~.uncertainty.volume_points`)."""
    base = RigidTransform(before.matrix.detach().cpu().double())
    moved = RigidTransform(after.matrix.detach().cpu().double())
    return float(batched_mtre(base, moved, volume_points(drr))[0])


MIN_RESIDUAL = 1e-3  # 1 - similarity below this is not a noise level a weight can trust


@torch.no_grad()
def _weigh(drr, lm_views: list[LMView], pose: RigidTransform) -> list[float]:
    """Weigh each view by the inverse of its residual ``1 - similarity`` at `pose`: the maximum
    likelihood weights of views with different noise levels (a noisier or less telling view,
    e.g. a lateral chest, counts less), the same ``sigma^2`` the uncertainty uses. Returns the
    views' similarities there."""
    sims = _view_similarities(drr, lm_views, pose)
    for view, sim in zip(lm_views, sims, strict=True):
        view.weight = 1.0 / max(1.0 - sim, MIN_RESIDUAL)
    return sims


def _view_similarities(drr, lm_views: list[LMView], pose: RigidTransform) -> list[float]:
    """Each view's similarity at `pose`, at the last stage that ran."""
    return [float(view.similarity(view.fixed, view.render(drr, pose)).mean()) for view in lm_views]


@torch.no_grad()
def _joint_views(
    result: RegistrationResult,
    views: list[_View],
    drr,
    init_pose,
    final,
    similarities: list[float] | None,
    keep_images: bool,
) -> None:
    """A joint registration's per-view record: ``result.views`` (each view's X-ray, relative
    pose, pose and similarity) and, with `keep_images`, each view's X-ray and DRRs."""
    if len(views) < 2:
        return
    result.views = []
    for index, view in enumerate(views):
        pose = view.pose(final)
        entry = {
            "xray": str(view.xray.path) if view.xray.path else f"view {index}",
            "relative_pose": pose_to_dict(
                RigidTransform(
                    torch.eye(4, dtype=torch.float64)[None]
                    if view.relative is None
                    else view.relative.double().cpu()[None]
                )
            ),
            "init_pose": pose_to_dict(view.pose(init_pose)),
            "final_pose": pose_to_dict(pose),
            "intrinsics": view.full.to_dict(),
            "similarity": None if similarities is None else similarities[index],
        }
        if keep_images:
            set_intrinsics(drr, view.full)
            entry["images"] = {
                "xray": view.img[0, 0].cpu().numpy(),
                "init_drr": drr(view.pose(init_pose))[0, 0].float().cpu().numpy(),
                "final_drr": drr(pose)[0, 0].float().cpu().numpy(),
            }
        result.views.append(entry)


def _uncertainty(run: _Run, drr, lm_views, intr, pixels: int, inputs: dict):
    """The pose's uncertainty from one Gauss-Newton evaluation at the best pose (`pixels`: the
    stage's pixels that enter the similarity, over every view): the last step's own when its
    Hessian was computed there (a converged LM stage ends so), otherwise a new one."""
    solver = _lm_solver(run, drr, lm_views, intr)
    fit = run.evaluation
    usable = fit is not None and (fit.fresh or run.trust_hessian) and fit.pose is run.best_pose
    if not (len(lm_views) == 1 and usable):
        fit = solver.evaluate(solver.params_of(run.best_pose))  # (the weights may have moved)
    similarity = fit.similarity
    if len(lm_views) > 1:  # sigma^2 whose inverse is the views' mean inverse (see _weigh)
        residuals = [max(1.0 - s, MIN_RESIDUAL) for s in fit.view_similarities]
        similarity = 1.0 - len(residuals) / sum(1.0 / r for r in residuals)
    return pose_uncertainty(
        fit.hessian,
        similarity,
        pixels,
        run.best_pose,
        volume_points(drr),
        inputs.get("orientation") or "AP",
        solver.convention,
    )


def _lm_solver(run: _Run, drr, lm_views: list[LMView], intr) -> PoseLM:
    """LM at one stage: finite-difference steps of 1/6 detector pixel, and the pose prior."""
    options = run.options
    convention = options.convention if options.parameterization == "euler_angles" else "ZXY"
    first = lm_views[0]
    return PoseLM(
        drr,
        first.fixed,
        first.prep,
        first.similarity,
        convention,
        step_mm=intr.delx / 6,
        views=lm_views,
        prior=pose_prior(options, run.pixels),
    )


def pose_prior(options: RegistrationOptions, pixels: int) -> torch.Tensor | None:
    """The prior's precision (6, 6) in units of ``1 - similarity``: a Gaussian of
    `options.prior_deg` per angle and `options.prior_mm` per translation around each stage's
    start, weighed as one image sample against the stage's ``pixels / KAPPA`` independent ones
    (:mod:`.uncertainty`'s count, with the residual variance at its worst, 1): it holds what
    the coarse images hardly see, and fades as the scales get finer."""
    if options.prior_deg <= 0 or options.prior_mm <= 0 or pixels <= 0:
        return None
    sd = torch.tensor([math.radians(options.prior_deg)] * 3 + [options.prior_mm] * 3, dtype=torch.float64)
    return torch.diag(1.0 / sd**2) * KAPPA / pixels


def _multistart(run: _Run, starts: list[RigidTransform], stage, args: tuple) -> Iterator[Step]:
    """Run one stage from every start; the run goes on from the best similarity's end pose.
    LM runs the starts in lockstep, each round's renders of all of them in one batch."""
    if stage is _lm_stage:
        ends = yield from _lm_starts(run, starts, *args)
    else:
        ends = []
        for index, start in enumerate(starts):
            run.best_pose = run.best_similarity = run.hessian = None
            run.start_index = index
            yield from stage(run, *args, start)
            ends.append((run.best_similarity, run.best_pose, run.hessian))
            if run.stop.stopped:
                break
    _choose_start(run, starts, ends)


def _lm_starts(
    run: _Run,
    starts: list[RigidTransform],
    drr,
    lm_views,
    stage_idx,
    n_itrs,
    intr,
    hessian=None,
    track: bool = False,
) -> Iterator[Step]:
    """LM at one stage from every start at once (:meth:`PoseLM.run_many`); returns each start's
    (best similarity, best pose, Hessian). With `track`, the run's best follows every accepted
    step (one start: a stop or a closed generator keeps the stage's progress)."""
    solver = _lm_solver(run, drr, lm_views, intr)
    ends: list[tuple] = [(None, None, None)] * len(starts)
    for index, lm_step in solver.run_many(
        starts, n_itrs, hessian=hessian, should_stop=lambda: run.stop.stopped, trust_hessian=run.trust_hessian
    ):
        ev = lm_step.evaluation
        if lm_step.accepted:
            if ev.fresh:
                run.hessian_fresh = True
            ends[index] = (ev.similarity, ev.pose, (ev.hessian, intr.delx))
            if track:
                run.best_similarity, run.best_pose, run.hessian = ends[index]
                run.evaluation = ev
        if track:  # how the (one) run ended so far: its last step says
            run.converged, run.stage_itrs = lm_step.converged, lm_step.itr + 1
        if len(starts) > 1:  # one start: a later stage keeps the index of the chosen start
            run.start_index = index
        yield run.step(
            stage_idx,
            lm_step.itr,
            ev.pose,
            ev.similarity,
            lm_step.seconds,
            (math.nan, math.nan),
            ev.views_moving,
            lm_views,
            show=lm_step.accepted and run.options.drr_every > 0,
            damping=lm_step.damping,
        )
    return ends


def _choose_start(run: _Run, starts: list[RigidTransform], ends: list[tuple]) -> None:
    """Go on from the start whose stage ended at the highest similarity."""
    scores = [-math.inf if sim is None else sim for sim, _, _ in ends]
    chosen = int(np.argmax(scores))
    run.best_similarity, run.best_pose, run.hessian = ends[chosen]
    run.start_index = chosen
    run.result.multistart = {
        "chosen": chosen,
        "similarities": [None if sim is None else float(sim) for sim, _, _ in ends],
        "start_poses": [pose_to_dict(pose) for pose in starts],
    }


def _set_slab(drr, slab_mm: float) -> float:
    """Set the fast renderer's slab thickness; returns the previous one (0 for other renderers)."""
    before = getattr(drr, "slab_mm", 0.0)
    if hasattr(drr, "slab_mm"):
        drr.slab_mm = slab_mm
    return before


@dataclass
class _Run:
    """State shared by the stages of one registration."""

    options: RegistrationOptions
    similarity: Similarity
    stop: StopToken
    result: RegistrationResult
    init_pose: RigidTransform
    best_pose: RigidTransform | None = None
    best_similarity: float | None = None  # at best_pose, at the last scale that ran
    hessian: tuple | None = None  # LM's last (J^T J, detector spacing)
    trust_hessian: bool = False  # a reused Hessian's convergence verdict stands (tracking)
    hessian_fresh: bool = False  # a Hessian was computed in this run (not only reused)
    evaluation: object = None  # LM's evaluation at best_pose (a fresh Hessian there is reused)
    total_itr: int = 0
    start_index: int = 0  # which start of a multi-start first scale is running (or was chosen)
    converged: bool | None = None  # LM: the last scale's run ended by its convergence test
    stage_itrs: int = 0  # LM: the last scale's iterations (its first evaluation counts one)
    pixels: int = 0  # the current stage's pixels that enter the similarity

    def step(self, stage, itr, pose, sim, elapsed, lrs, movings, lm_views, show, damping=None) -> Step:
        """The event of one iteration (`movings`: each view's prepared DRR)."""
        self.result.trajectory.append(_row(stage, itr, pose, sim, elapsed, lrs, self.start_index))
        moving, fixed = movings[0], lm_views[0].fixed
        joint = len(lm_views) > 1
        event = Step(
            stage=stage,
            itr=itr,
            total_itr=self.total_itr,
            similarity=sim,
            params=tuple(float(v) for v in np.concatenate(pose_to_zxy(pose))),
            matrix=pose.matrix[0].detach().cpu().double().numpy(),
            lr_rot=lrs[0],
            lr_xyz=lrs[1],
            time_s=elapsed,
            drr=moving[0, 0].detach().float().cpu().numpy() if show else None,
            fixed=fixed[0, 0].float().cpu().numpy() if itr == 0 else None,
            damping=damping,
            start=self.start_index,
            view_drrs=tuple(_image(m) for m in movings) if show and joint else (),
            view_fixed=tuple(_image(v.fixed) for v in lm_views) if itr == 0 and joint else (),
        )
        self.total_itr += 1
        return event


def _image(tensor: torch.Tensor) -> np.ndarray:
    return tensor[0, 0].detach().float().cpu().numpy()


def _lm_stage(run: _Run, drr, lm_views, stage_idx, n_itrs, intr, start) -> Iterator[Step]:
    """Levenberg-Marquardt at one scale from `start`, from the previous scale's Hessian."""
    hessian = None
    if run.hessian is not None:  # the previous scale's, as curvature grows ~ resolution^2
        hessian = run.hessian[0] * (run.hessian[1] / intr.delx) ** 2
    yield from _lm_starts(run, [start], drr, lm_views, stage_idx, n_itrs, intr, hessian, track=True)


def _adam_stage(run: _Run, drr, lm_views, stage_idx, n_itrs, intr, start) -> Iterator[Step]:
    """xvr's stage: Adam, ReduceLROnPlateau, and max_n_plateaus step-size levels."""
    options, device = run.options, drr.device
    rot, xyz = _params(start, options)
    step_scalar = 2 ** ((stage_idx - 1) * stage_idx // 2)  # xvr halves the rates every stage
    optimizer = torch.optim.Adam(
        [
            {"params": [rot], "lr": options.lr_rot / step_scalar},
            {"params": [xyz], "lr": options.lr_xyz / step_scalar},
        ],
        maximize=True,
    )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="max",
        factor=options.lr_reduce_factor,
        patience=options.patience,
        threshold=options.threshold,
    )
    best_sim, n_levels, current_lr = -np.inf, 0, np.inf
    for itr in range(n_itrs):
        if run.stop.stopped:
            break
        _sync(device)
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        pose = _pose(rot, xyz, options)
        movings = [view.render(drr, pose) for view in lm_views]
        loss = torch.stack(
            [
                view.similarity(view.fixed, moving).mean()
                for view, moving in zip(lm_views, movings, strict=True)
            ]
        ).mean()
        loss.backward()
        sim = float(loss.detach())
        if sim > best_sim:
            best_sim, run.best_pose = sim, RigidTransform(pose.matrix.detach().clone())
            run.best_similarity = sim
        optimizer.step()
        scheduler.step(sim)
        _sync(device)
        lrs = [group["lr"] for group in optimizer.param_groups]
        show = options.drr_every > 0 and itr % options.drr_every == 0
        yield run.step(
            stage_idx,
            itr,
            pose,
            sim,
            time.perf_counter() - t0,
            lrs,
            [m.detach() for m in movings],
            lm_views,
            show,
        )
        # xvr's rule: a stage ends when it reaches its max_n_plateaus-th step size
        if lrs[0] < current_lr:
            current_lr = lrs[0]
            n_levels += 1
        if n_levels >= options.max_n_plateaus:
            break


def run_to_end(events: Iterator) -> RegistrationResult:
    """Consume an engine generator and return its result (for scripts)."""
    result = None
    for event in events:
        if isinstance(event, Done):
            result = event.result
    if result is None:
        raise RuntimeError("the registration ended without a result")
    return result
