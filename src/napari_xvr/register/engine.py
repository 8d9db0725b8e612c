"""The registration engine: one generator of progress events for the CLI, napari and scripts.

Multiscale test-time optimisation as in xvr.  At each scale, either Levenberg-Marquardt on the
six pose parameters (default, :mod:`.optimiser.lm`: 3-10 evaluations per scale) or xvr's Adam with separate
step sizes for rotation and translation, ReduceLROnPlateau, and a plateau count that moves on
to the next scale.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from diffdrr.pose import RigidTransform

from ..errors import XvrInputError
from ..io.result import RegistrationResult
from ..io.xray import XRay
from ..render import set_intrinsics
from .checks.fit import Fit, similarity_ceiling
from .events import (
    Done,
    Stage,
    Step,
    StopToken,  # noqa: F401 (re-exported)
)
from .masks.fov import volume_cut_faces
from .masks.masking import masked_fraction
from .optimiser.multistart import start_poses
from .optimiser.stage_run import (  # noqa: F401 (pose_prior: the public name)
    _adam_stage,
    _joint_views,
    _lm_solver,
    _lm_stage,
    _moved_mm,
    _multistart,
    _Run,
    _set_slab,
    _uncertainty,
    _view_similarities,
    _weigh,
    pose_prior,
)
from .optimiser.stage_views import (  # noqa: F401 (re-exported: the pipeline and tests use them)
    MIN_EXPLAINED,
    MIN_STAGE_PX,
    EmptyStage,
    _preparer,
    _stage_views,
    _views,
    check_stages,
    check_view,
    stage_intrinsics,
)
from .options import RegistrationOptions


@dataclass
class Preprocessing:
    """X-ray preprocessing as the reference (crop is in RegistrationOptions)."""

    subtract_background: bool = False
    linearize: bool = False
    reducefn: str | int = "max"


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
        # every view has its mask as the first does (one --xray_mask for all)
        fractions = [masked_fraction(cast(np.ndarray, view.valid)) for view in views]
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
        assert lm_views is not None  # a scale ran (the last one raises EmptyStage if none did)
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
            assert run.best_similarity is not None  # set with run.best_pose
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
            assert view_sims is not None  # found just above
            run.best_similarity = float(np.mean(view_sims))
        result.similarity = run.best_similarity
        if keep_images:
            set_intrinsics(drr, first.full)
            result.images["final_drr"] = drr(final)[0, 0].float().cpu().numpy()
    _joint_views(result, views, drr, init_pose, final, view_sims, keep_images)
    yield Done(result)


def run_to_end(events: Iterator) -> RegistrationResult:
    """Consume an engine generator and return its result (for scripts)."""
    result = None
    for event in events:
        if isinstance(event, Done):
            result = event.result
    if result is None:
        raise RuntimeError("the registration ended without a result")
    return result
