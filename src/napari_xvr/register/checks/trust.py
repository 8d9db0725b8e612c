"""The verdict on one registration: ``ok``, ``suspect`` or ``failed``, with the reasons.

It reads what the run recorded (``result.checks``: the uncertainty, the fit against the X-ray's
own noise (:mod:`.fit`), the mirror and setup checks, whether LM's last scale converged before its
iteration cap and how far it moved the pose; the multi-start's end similarities) and applies
thresholds calibrated on generated cases (``python -m benchmarks.trust``). A verdict is never
``ok`` without an uncertainty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ... import defaults
from .fit import FIT_RATIO
from .setup_check import OTHER_SIDE  # a start from the other side also matches mirrored

OK, SUSPECT, FAILED = "ok", "suspect", "failed"
SEVERITY = {OK: 0, SUSPECT: 1, FAILED: 2}

TRUST_MM: float = defaults.reg("trust_mm")
"""A predicted mTRE above this is suspect (the accuracy this tool is built to reach)."""
FAILED_FACTOR = 10.0
"""A predicted mTRE above FAILED_FACTOR x TRUST_MM is a failure."""
DRIFT_PX = 2.0
"""The finest scale moving the pose (xvr's mTRE, mm) more than this many of the previous scale's
detector pixels is a failure: its optimum is not the one the coarser scales found, so the result
rests on neither (calibrated on the realistic benchmark, ``python -m benchmarks.realistic``,
with the finest scale capped at 10 iterations: results under 1 mm moved at most 1.4 such pixels,
the misses of 4-45 mm 1.7-5.2; with the cap of 30, one result of 0.29 mm moved 2.1 and reads
failed)."""
EXPLAINED = 0.9
"""A final DRR that explains the X-ray to this share of its own ceiling (:mod:`.fit`) outweighs a
disagreement between scales: the finest scale corrected the coarser ones (seen on clean X-rays:
0.64 mm after a 19 mm move at the finest scale, at 0.97 of the ceiling; the realistic misses
that moved ended at 0.46-0.78)."""
UNSETTLED_PX = 1.5
"""A finest scale that ran out of iterations after moving the pose more than this many of the
previous scale's pixels is a failure: it was still travelling, far from where it would stop (on
the realistic benchmark: 1.7-5.2 for the misses that ran out, 1.2 for one under 1 mm)."""
LONG_WALK = 10
"""A finest scale that needed more than this many iterations (or ran out of them) after moving the
pose more than UNSETTLED_PX of the previous scale's pixels walked far from where the coarser scales
left it: on the realistic benchmark every such result ended 2.3-5.6 mm off, while the finest
scales of results under 1 mm settled in 3-10 iterations."""
STARTS_AGREE = 0.01
"""Multi-start ends within this similarity of the best are rivals; rivals far apart disagree."""


@dataclass(frozen=True)
class Verdict:
    status: str
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"status": self.status, "reasons": list(self.reasons)}

    @property
    def ok(self) -> bool:
        return self.status == OK


def assess(result, trust_mm: float = TRUST_MM) -> Verdict:
    """The verdict for a :class:`~napari_xvr.io.result.RegistrationResult`."""
    failed, suspect = [], []
    if result.final_pose is None:
        return Verdict(SUSPECT, ["no registration ran (--init_only): the pose is the start's"])
    if result.similarity is None or not math.isfinite(result.similarity):
        failed.append("the final similarity is not a number")
    u = result.checks.get("uncertainty")
    if result.stopped:
        suspect.append("stopped before it converged")
    if u is None:
        suspect.append("no uncertainty was computed")
    else:
        predicted = u.get("predicted_mtre_mm")
        condition = u.get("condition")
        if condition is None or not condition < 1e10:
            failed.append("the image does not determine the pose (degenerate Hessian)")
        elif predicted is None or not math.isfinite(predicted):
            failed.append("the predicted error is not finite")
        elif predicted > FAILED_FACTOR * trust_mm:
            failed.append(f"predicted mTRE {predicted:.1f} mm (> {FAILED_FACTOR * trust_mm:g} mm)")
        elif predicted > trust_mm:
            suspect.append(f"predicted mTRE {predicted:.2f} mm (> {trust_mm:g} mm)")
    convergence = result.checks.get("convergence")
    moved, pixel = (
        (0.0, math.inf)
        if result.stopped or "tracking" in result.checks
        else finest_scale_motion(result.checks, result.intrinsics.delx, result.intrinsics.dely)
    )
    fit = result.checks.get("fit") or {}
    if fit.get("ratio", 0.0) >= EXPLAINED:  # (a NaN ratio explains nothing)
        moved = 0.0
    if moved > DRIFT_PX * pixel:
        failed.append(
            f"the finest scale moved the pose {moved:.1f} mm away from the coarser scales' "
            f"optimum (> {DRIFT_PX:g} of their {pixel:.1f} mm pixels): the scales disagree, the "
            "pose is likely several mm off or more (start closer: --multistart, a model, "
            "landmarks; or check the X-ray's mask)"
        )
    elif moved > UNSETTLED_PX * pixel and convergence and not convergence["converged"]:
        failed.append(
            f"the finest scale moved the pose {moved:.1f} mm and used all {convergence['cap']} "
            "iterations still moving: the pose is likely several mm off (start closer: "
            "--multistart, a model, landmarks)"
        )
    elif moved > UNSETTLED_PX * pixel and convergence and convergence["iterations"] > LONG_WALK:
        failed.append(
            f"the finest scale walked the pose {moved:.1f} mm over {convergence['iterations']} "
            f"iterations (> {LONG_WALK}): the coarser scales left it far from this optimum, and "
            "such results were several mm off (start closer: --multistart, a model, landmarks)"
        )
    elif (
        convergence
        and not convergence["converged"]
        and not result.stopped
        and "tracking" not in result.checks
    ):  # (a tracked frame's own check says it)
        suspect.append(
            f"used all {convergence['cap']} iterations of its last scale without converging: the "
            "pose was still moving (raise the last --n_itrs, or start closer: --multistart, a "
            "model)"
        )
    if fit and math.isfinite(fit.get("ratio", math.nan)) and fit["ratio"] < FIT_RATIO:
        suspect.append(
            f"the DRR explains little of this X-ray: similarity {fit['similarity']:.3f} is "
            f"{fit['ratio']:.2f} of what its own noise allows ({fit['ceiling']:.3f}): a wrong "
            "optimum?"
        )
    mirror = result.checks.get("mirror")
    setup = result.checks.get("setup") or {}
    if mirror and mirror.get("mirrored_better") and setup.get("better") != OTHER_SIDE.name:
        failed.append(
            f"matches clearly better mirrored left-right ({mirror['mirrored_similarity']:.3f} vs "
            f"{mirror['similarity']:.3f}): no pose of this set-up fits; the other flip "
            "convention (--reverse_x_axis), or a start from the other side of the patient?"
        )
    if setup.get("better"):
        failed.append(
            f"the X-ray matches the volume far better {setup['mistake']} (similarity "
            f"{setup['tried'][setup['better']]:.3f} vs {setup['similarity']:.3f} as set up): "
            f"{setup['fix']}"
        )
    rivals = _rival_starts(result)
    if rivals:
        suspect.append(rivals)
    if failed:
        return Verdict(FAILED, failed + suspect)
    return Verdict(SUSPECT if suspect else OK, suspect)


def finest_scale_motion(checks: dict, delx: float, dely: float) -> tuple[float, float]:
    """How far the finest of several scales moved the pose (mm, ``checks['motion_mm']``), and
    the previous scale's detector pixel (mm) for a full-resolution pixel of `delx` x `dely`;
    (0, inf) when fewer than two scales ran (a stopped run and a tracked frame, whose one scale
    starts from the previous frame, are not asked)."""
    motion = checks.get("motion_mm") or {}
    if len(motion) < 2:
        return 0.0, math.inf
    scales = sorted(motion, key=float)
    return float(motion[scales[0]]), float(scales[1]) * max(delx, dely)


def _rival_starts(result) -> str | None:
    """A reason when another start of a multi-start ended almost as well far from the chosen."""
    ms = result.multistart
    if not ms or not ms.get("similarities"):
        return None
    sims = [s for s in ms["similarities"] if s is not None]
    if len(sims) < 2:
        return None
    ranked = sorted(sims, reverse=True)
    if ranked[0] - ranked[1] < STARTS_AGREE and ranked[0] < 0.9:
        return (
            f"two starts ended nearly as well (similarity {ranked[0]:.3f} and {ranked[1]:.3f}) "
            "at a low similarity: the optimum is ambiguous"
        )
    return None


def worst(statuses) -> str:
    """The most severe of `statuses` (ok when there are none)."""
    return max(statuses, key=SEVERITY.__getitem__, default=OK)


def verdict_text(result) -> str:
    """'ok (predicted mTRE 0.57 mm)' or 'SUSPECT: reason; reason'."""
    predicted = (result.checks.get("uncertainty") or {}).get("predicted_mtre_mm")
    return verdict_text_of(result.verdict, predicted)


def verdict_text_of(verdict: dict | None, predicted: float | None = None) -> str:
    verdict = verdict or {"status": "n/a", "reasons": []}
    if verdict["status"] == OK:
        what = "n/a" if predicted is None else f"{predicted:.2f} mm"
        return f"ok (predicted mTRE {what})"
    return f"{verdict['status'].upper()}: " + "; ".join(verdict["reasons"])
