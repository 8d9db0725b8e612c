"""Levenberg-Marquardt on the six pose parameters: few renders per registration.

Each iteration renders the DRR at the current pose with its exact gradient (the renderer's
backward).  The Gauss-Newton Hessian ``J^T J`` comes from six more DRRs, one per parameter
nudged by a small step, through the Gram matrix of the seven (:mod:`.gram`): with
:class:`~napari_xvr.fastdrr.FastDRR` the nudged DRRs are the centre's plus the step times its
exact Jacobian (a few backward passes, no render), otherwise six renders in one batch.  It is
refreshed every few accepted steps and after a rejected one, and a scale
starts from the previous scale's.  The gradient is exact, so the optimum is the similarity's
own.  A damped Newton step (Marquardt's scaling) is accepted when the similarity rises,
otherwise the damping grows.  Converges in ~3-10 iterations per scale where Adam takes 40-150.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
from diffdrr.pose import RigidTransform, convert

from .gram import gauss_newton_hessian, similarity_gram
from .jacobian import image_jacobian, renders_jacobian
from .similarity import Similarity

if TYPE_CHECKING:
    from ...geometry import Intrinsics

ROTATION_RADIUS_MM = 150.0  # lever arm that turns a rotation step into a displacement


@dataclass
class Evaluation:
    """The similarity at a parameter vector, its gradient and the Gauss-Newton Hessian."""

    params: torch.Tensor  # (6,) float64: 3 Euler angles (rad), 3 translations (mm)
    pose: RigidTransform
    similarity: float  # the mean over the views
    gradient: torch.Tensor  # (6,) d similarity / d params
    hessian: torch.Tensor | None  # (6, 6) J^T J of (1 - similarity); None only within evaluate_many
    moving: torch.Tensor  # (1, 1, H, W) the prepared DRR (the first view's)
    views_moving: tuple = ()  # every view's prepared DRR (joint registration)
    view_similarities: tuple = ()  # every view's similarity
    fresh: bool = False  # the Hessian was computed here (not reused from another point)


@dataclass
class LMView:
    """One X-ray of a (joint) registration at one stage: its prepared image and similarity, the
    detector to render it with, and where its camera sits relative to the optimised pose."""

    fixed: torch.Tensor
    prep: Callable
    similarity: Similarity
    intrinsics: Intrinsics | None = None  # set on the renderer before this view's renders (None: as is)
    relative: torch.Tensor | None = None  # (4, 4): this view's pose = pose @ relative (None: same)
    weight: float = 1.0  # its share of the joint similarity (the views' weights are normalised)

    def render(self, drr, pose: RigidTransform) -> torch.Tensor:
        """This view's prepared DRR(s) of the optimised `pose` (B, 1, H, W)."""
        return self.prep(self.raw(drr, pose))

    def raw(self, drr, pose: RigidTransform) -> torch.Tensor:
        """This view's DRR(s) of the optimised `pose` as rendered (B, 1, H, W), not prepared."""
        if self.intrinsics is not None:
            from ...render import set_intrinsics

            set_intrinsics(drr, self.intrinsics)
        if self.relative is not None:
            pose = RigidTransform(pose.matrix @ self.relative.to(pose.matrix))
        return drr(pose)


@dataclass
class _Ask:
    """What a run needs evaluated next: the parameters, and the Hessian to reuse (None: new)."""

    params: torch.Tensor
    hessian: torch.Tensor | None
    known: Evaluation | None = None  # already rendered here: only the Hessian is new


@dataclass
class LMStep:
    """One evaluated trial step (accepted or not)."""

    itr: int
    evaluation: Evaluation
    accepted: bool
    damping: float
    seconds: float
    converged: bool = False  # the run ends here by its own test (not by its iteration cap)


class PoseLM:
    """Levenberg-Marquardt over ``convert(rot, xyz, 'euler_angles', convention)``."""

    def __init__(
        self,
        drr,
        fixed: torch.Tensor,
        prep: Callable,
        similarity: Similarity,
        convention: str = "ZXY",
        step_mm: float = 1.0,
        views: list[LMView] | None = None,
        prior: torch.Tensor | None = None,
    ):
        """`views` (joint registration): every X-ray's :class:`LMView`; the similarity is their
        weighted mean, and so are the gradient and Gauss-Newton Hessian. Without it, the one view
        (`fixed`, `prep`, `similarity`) with the renderer as it is. `prior` (6, 6), in the units
        of ``1 - similarity`` per parameter squared: a Gaussian prior centred on each run's start
        (:meth:`objective`), so that what the image hardly determines at a coarse scale (the
        out-of-plane angles, depth) stays near the start instead of following noise and bias."""
        self.views = views or [LMView(fixed, prep, similarity)]
        self.prior = None if prior is None else prior.to(torch.float64).cpu()
        self.drr, self.fixed = drr, self.views[0].fixed
        self.convention = convention
        step_rad = step_mm / ROTATION_RADIUS_MM
        self.steps = torch.tensor([step_rad] * 3 + [step_mm] * 3, dtype=torch.float64)

    def params_of(self, pose: RigidTransform) -> torch.Tensor:
        rot, xyz = pose.convert("euler_angles", self.convention)
        return torch.cat([rot[0], xyz[0]]).detach().cpu().to(torch.float64)

    def pose_of(self, params: torch.Tensor) -> RigidTransform:
        p = params.reshape(-1, 6).to(self.fixed.device, torch.float32)
        return convert(p[:, :3], p[:, 3:], parameterization="euler_angles", convention=self.convention)

    def evaluate(self, params: torch.Tensor, hessian: torch.Tensor | None = None) -> Evaluation:
        """One fwd+bwd render at `params`, and its Hessian unless `hessian` is given."""
        return self.evaluate_many([_Ask(params, hessian)])[0]

    def evaluate_many(self, asks: list[_Ask]) -> list[Evaluation]:
        """:meth:`evaluate` for several parameter vectors at once: one batched fwd+bwd render of
        every centre not rendered before (an ask's `known` evaluation is reused), one batched
        forward render of the nudges of those without a Hessian (per view, the views'
        similarities and Hessians averaged)."""
        linear = self.linearised()
        if linear:  # a new Hessian comes with a centre's render: render a known one again
            asks = [dataclasses.replace(a, known=None) if a.hessian is None else a for a in asks]
        known: list[Evaluation | None] = [a.known for a in asks]
        todo = [i for i, a in enumerate(asks) if a.known is None]
        if todo:
            for i, evaluation in zip(todo, self._centres([asks[i] for i in todo]), strict=True):
                known[i] = evaluation
        out = cast(list[Evaluation], known)  # every ask has its evaluation now
        need = [] if linear else [i for i, a in enumerate(asks) if a.hessian is None]
        if need:
            weights = self.weights()
            nudges = torch.cat([out[i].params[None] + torch.diag(self.steps) for i in need])
            found = [
                self._view_hessians(view, [out[i].views_moving[k] for i in need], nudges)
                for k, view in enumerate(self.views)
            ]
            for j, i in enumerate(need):
                hessian = cast(  # the views' weighted sum (never the empty sum's 0)
                    torch.Tensor, sum(float(w) * h[j] for w, h in zip(weights, found, strict=True))
                )
                out[i] = dataclasses.replace(out[i], hessian=hessian, fresh=True)
        return out

    def _centres(self, asks: list[_Ask]) -> list[Evaluation]:
        """The similarity and its exact gradient at every ask's parameters (one batched fwd+bwd
        render per view); each keeps its ask's Hessian (None: still to find)."""
        params = torch.stack([a.params for a in asks])
        p = params.to(self.fixed.device, torch.float32).clone().requires_grad_(True)
        pose = convert(p[:, :3], p[:, 3:], parameterization="euler_angles", convention=self.convention)
        raws = [view.raw(self.drr, pose) for view in self.views]
        movings = [view.prep(raw) for view, raw in zip(self.views, raws, strict=True)]
        view_sims = torch.stack(
            [view.similarity(view.fixed, moving) for view, moving in zip(self.views, movings, strict=True)]
        )
        weights = self.weights()
        sims = (weights.to(view_sims)[:, None] * view_sims).sum(dim=0)
        need = [i for i, a in enumerate(asks) if a.hessian is None] if self.linearised() else []
        # the runs are independent: row i is run i's
        (grads,) = torch.autograd.grad(sims.sum(), p, retain_graph=bool(need))
        hessians: list[torch.Tensor | None] = [a.hessian for a in asks]  # None: still to find
        if need:
            found = [
                self._linear_hessians(view, p, raw, moving, need)
                for view, raw, moving in zip(self.views, raws, movings, strict=True)
            ]
            for j, i in enumerate(need):
                hessians[i] = cast(  # the views' weighted sum (never the empty sum's 0)
                    torch.Tensor, sum(float(w) * h[j] for w, h in zip(weights, found, strict=True))
                )
        matrices = pose.matrix.detach()
        return [
            Evaluation(
                params=params[i].clone(),
                pose=RigidTransform(matrices[i : i + 1].clone()),
                similarity=float(sims[i].detach()),
                gradient=grads[i].detach().cpu().to(torch.float64),
                hessian=hessians[i],
                moving=movings[0][i : i + 1].detach(),
                views_moving=tuple(m[i : i + 1].detach() for m in movings),
                view_similarities=tuple(float(v) for v in view_sims[:, i].detach()),
                fresh=i in need,
            )
            for i in range(len(asks))
        ]

    def linearised(self) -> bool:
        """Whether a Hessian comes with its centre's render (:func:`renders_jacobian`)."""
        return renders_jacobian(self.drr)

    def _linear_hessians(
        self, view: LMView, p: torch.Tensor, raw: torch.Tensor, moving: torch.Tensor, rows: list[int]
    ) -> list[torch.Tensor]:
        """One view's Gauss-Newton Hessian at the centres `rows` of `p` from its DRR `raw`
        (the graph kept) and their prepared DRRs `moving`.

        Each nudged DRR is the centre's plus the step times its exact derivative along that
        parameter (``raw + h_k dDRR/dp_k``, :func:`image_jacobian`), prepared as a render is.
        """
        jacobian = image_jacobian(raw, p)[rows]
        with torch.no_grad():
            steps = self.steps.to(raw.device, raw.dtype).view(1, 6, 1, 1, 1)
            nudged = raw.detach()[rows].unsqueeze(1) + steps * jacobian
            nudged = view.prep(nudged.flatten(0, 1)).reshape(len(rows), 6, *moving.shape[1:])
            return [
                gauss_newton_hessian(
                    similarity_gram(view.similarity, torch.cat([moving[i : i + 1].detach(), nudged[j]])),
                    self.steps,
                )
                for j, i in enumerate(rows)
            ]

    def weights(self) -> torch.Tensor:
        """The views' normalised weights (float64, summing to 1)."""
        w = torch.tensor([view.weight for view in self.views], dtype=torch.float64)
        return w / w.sum()

    @torch.no_grad()
    def _view_hessians(
        self, view: LMView, centres: list[torch.Tensor], nudges: torch.Tensor
    ) -> list[torch.Tensor]:
        """One view's Gauss-Newton Hessian at each centre (its prepared DRR, 1x1xHxW) from its six
        nudged renders (`nudges`: six parameter rows per centre)."""
        nudged = view.render(self.drr, self.pose_of(nudges)).reshape(len(centres), 6, *centres[0].shape[1:])
        return [
            gauss_newton_hessian(similarity_gram(view.similarity, torch.cat([centre, nudged[k]])), self.steps)
            for k, centre in enumerate(centres)
        ]

    def run(
        self,
        pose: RigidTransform,
        max_itrs: int,
        damping: float = 1e-3,
        tolerance: float = 0.1,
        refresh: int = 8,
        hessian: torch.Tensor | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        trust_hessian: bool = False,
    ) -> Iterator[LMStep]:
        """Yield every evaluated step; the last accepted evaluation is the best.

        Ends after `max_itrs` evaluations; when, after an accepted step, the Gauss-Newton step
        to the model's optimum moves every parameter by less than `tolerance` times its
        finite-difference step (1/60 detector pixel with the engine's steps: a test in pose
        space, so it holds for noisy images whose similarity stays far from 1 as for clean
        ones), judged with a fresh Hessian (a reused one that claims convergence is recomputed
        first: a previous scale's, rescaled, can be too stiff and stop a climb that goes on);
        or after two rejected steps in a row (the similarity's noise floor).  The
        Hessian is recomputed every `refresh` accepted steps and after a rejected step; a
        `hessian` from a previous stage starts it. With `trust_hessian` (tracking: the previous
        frame's Hessian, at the same scale and a nearby pose) a reused Hessian's convergence
        verdict stands.
        """
        for _, step in self.run_many(
            [pose], max_itrs, damping, tolerance, refresh, hessian, should_stop, trust_hessian
        ):
            yield step

    def run_many(
        self,
        poses: list[RigidTransform],
        max_itrs: int,
        damping: float = 1e-3,
        tolerance: float = 0.1,
        refresh: int = 8,
        hessian: torch.Tensor | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        trust_hessian: bool = False,
    ) -> Iterator[tuple[int, LMStep]]:
        """:meth:`run` from every pose at once, in lockstep: each round, what all the runs
        still going need rendered is rendered in one batch. Yields (run index, step)."""
        runs = {
            i: self._steps(
                self.params_of(pose),
                max_itrs,
                damping,
                tolerance,
                refresh,
                hessian,
                should_stop,
                trust_hessian,
            )
            for i, pose in enumerate(poses)
        }
        answers: dict[int, Evaluation | None] = dict.fromkeys(runs)
        while runs:
            asks: dict[int, _Ask] = {}
            for i in list(runs):
                try:
                    item = runs[i].send(answers.pop(i, None))
                    while isinstance(item, LMStep):
                        yield i, item
                        item = next(runs[i])
                    asks[i] = item
                except StopIteration:
                    del runs[i]
            if asks:
                answers = dict(zip(asks, self.evaluate_many(list(asks.values())), strict=True))

    def _steps(
        self,
        params: torch.Tensor,
        max_itrs: int,
        damping: float,
        tolerance: float,
        refresh: int,
        hessian: torch.Tensor | None,
        should_stop: Callable[[], bool],
        trust_hessian: bool = False,
    ):
        """One run of :meth:`run` as a coroutine: it yields an :class:`_Ask` when it needs an
        evaluation (sent back to it) and an :class:`LMStep` for every evaluated step."""
        t0 = time.perf_counter()
        current = yield _Ask(params, hessian)
        yield LMStep(0, current, True, damping, time.perf_counter() - t0)
        growth, age, rejected = 2.0, int(hessian is not None), 0
        centre = params.clone()
        for itr in range(1, max_itrs):
            if should_stop():
                return
            t0 = time.perf_counter()
            if rejected and age:  # a stale Hessian may be why: refresh it at the same point
                current = yield _Ask(current.params, None, current)
                age = 0
            value, gradient, curvature = self.objective(current, centre)
            delta = self.solve(curvature, gradient, damping)
            reuse = current.hessian if age + 1 < refresh else None
            trial = yield _Ask(current.params + delta, reuse)
            gain = self.objective(trial, centre)[0] - value
            predicted = float(delta @ gradient - 0.5 * delta @ curvature @ delta)
            if gain > 0:
                rho = gain / max(predicted, 1e-30)
                damping *= max(1 / 3, 1 - (2 * rho - 1) ** 3)
                growth, rejected = 2.0, 0
                age = age + 1 if reuse is not None else 0
                current = trial
                converged = self._near_optimum(current, centre, tolerance)
                if converged and age and not trust_hessian:  # check a reused one's verdict
                    current = trial = yield _Ask(current.params, None, current)
                    age = 0
                    converged = self._near_optimum(current, centre, tolerance)
            else:
                damping *= growth
                growth *= 2
                rejected += 1
                converged = rejected >= 2
            yield LMStep(itr, trial, gain > 0, damping, time.perf_counter() - t0, converged)
            if converged:
                return

    def objective(
        self, evaluation: Evaluation, centre: torch.Tensor
    ) -> tuple[float, torch.Tensor, torch.Tensor]:
        """What LM climbs: the similarity minus the prior's penalty ``d^T P d / 2`` (d: the
        parameters' offset from `centre`, the run's start), with its gradient and Gauss-Newton
        curvature. Without a prior, the similarity's own. Evaluations keep the image's alone."""
        assert evaluation.hessian is not None  # evaluate_many's evaluations all have one
        if self.prior is None:
            return evaluation.similarity, evaluation.gradient, evaluation.hessian
        offset = evaluation.params - centre
        pulled = self.prior @ offset
        return (
            evaluation.similarity - 0.5 * float(offset @ pulled),
            evaluation.gradient - pulled,
            evaluation.hessian + self.prior,
        )

    def _near_optimum(self, current: Evaluation, centre: torch.Tensor, tolerance: float) -> bool:
        """Whether the Gauss-Newton step to the model's optimum moves every parameter by less
        than `tolerance` times its finite-difference step."""
        _, gradient, curvature = self.objective(current, centre)
        return bool((self.solve(curvature, gradient, 0.0).abs() < tolerance * self.steps).all())

    @staticmethod
    def solve(hessian: torch.Tensor, gradient: torch.Tensor, damping: float) -> torch.Tensor:
        """The damped Gauss-Newton step (H + damping diag(H)) delta = gradient."""
        diag = hessian.diagonal().clamp_min(1e-12 * float(hessian.diagonal().max().clamp_min(1e-30)))
        system = hessian + torch.diag(damping * diag + 1e-12 * diag.max())
        try:
            delta = torch.linalg.solve(system, gradient)
        except torch.linalg.LinAlgError:  # a degenerate image (e.g. the DRR missed the volume)
            return torch.zeros_like(gradient)
        return torch.nan_to_num(delta, nan=0.0, posinf=0.0, neginf=0.0)
