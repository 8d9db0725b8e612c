"""How a scale runs: the optimiser's state (:class:`_Run`), Levenberg-Marquardt and Adam
stages, multi-start, the pose prior, and what the run records at its end (uncertainty, the
views of a joint run)."""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from diffdrr.pose import RigidTransform

from ...geometry import pose_to_dict, pose_to_zxy
from ...io.result import RegistrationResult
from ...render import set_intrinsics
from ..checks.uncertainty import KAPPA, batched_mtre, pose_uncertainty, volume_points
from ..events import Step, StopToken
from ..options import RegistrationOptions
from .lm import Evaluation, LMView, PoseLM
from .similarity import Similarity
from .stage_views import _params, _pose, _row, _sync, _View


def _moved_mm(drr, before: RigidTransform, after: RigidTransform) -> float:
    """How far a stage moved the pose: xvr's mTRE between `before` and `after` over points
    spanning the volume (:func:`~.checks.uncertainty.volume_points`)."""
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
    assert fit is not None  # usable: run.evaluation is one
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
    (:mod:`.checks.uncertainty`'s count, with the residual variance at its worst, 1): it holds what
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
) -> Generator[Step, None, list[tuple]]:
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
    evaluation: Evaluation | None = None  # LM's evaluation at best_pose (a fresh Hessian there is reused)
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
