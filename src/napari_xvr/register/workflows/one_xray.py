"""Register one X-ray (or a joint set of views): the engine run, its mirror and setup checks,
its verdict, the ``--multistart auto`` retry and the result folder written."""

from __future__ import annotations

import dataclasses
import glob
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from diffdrr.pose import RigidTransform

from ...io.result import RegistrationResult, write_result
from ...io.xray import XRay
from ...manual_pose import other_side
from ..checks.mirror import check_mirror
from ..checks.setup_check import OTHER_ORIENTATION, OTHER_SIDE, check_setup
from ..checks.trust import FAILED, OK, SEVERITY, assess
from ..engine import Preprocessing, StopToken, register
from ..events import Done, Step
from ..options import Outputs, RegistrationOptions, RunChecks
from ..volume_spec import VolumeSpec, _named


@dataclass(frozen=True)
class Written:
    path: Path  # the result folder
    result: RegistrationResult


def _xray_name(xray: XRay) -> str:
    return _named(xray.path) if xray.path else "X-ray"


@dataclass(frozen=True)
class Retrying:
    """Automatic recovery: the first run's verdict was not ok; the X-ray is registered again
    from `starts` more starts (``--multistart auto``), or (`other_side`) from the start turned
    to the other side of the patient, where the setup check found the X-ray matches far better."""

    starts: int
    verdict: dict
    other_side: bool = False

    @property
    def what(self) -> str:
        if self.other_side:
            return "retrying from the other side of the patient (the setup check's finding)"
        return f"retrying from {self.starts} more starts (--multistart auto)"


TURNED_ROUND = ("model",)
"""The starts a wrong side is recovered from automatically: a network's guess (pose regressors
confuse AP with PA, whose images are near mirror images). A header's, a landmark solve's or a
user's side is trusted: a mirrored X-ray (the other flip convention) also matches from the other
side, and turning round would give a confident pose 180 deg off, so the verdict names it instead
(the sample X-ray mirrored: 0.97 from the other side)."""

AUTO_STARTS = 8
"""More starts of ``--multistart auto``'s retry (the capture-range benchmark's 10/10 setting)."""


def stop_requested(stop: StopToken | None) -> bool:
    return stop is not None and stop.stopped


def _attempt(
    xray,
    drr,
    init_pose,
    options,
    preprocessing,
    init_only,
    keep_images,
    stop,
    inputs,
    initialization,
    checks: RunChecks,
    relatives=None,
    spec=None,
):
    """One engine run, its mirror check, verdict and, for a result that is not ok, the setup
    check (:mod:`.checks.setup_check`; the other orientation when `spec` is given): yields every event
    but Done; returns the result. A joint registration (`relatives`) has neither check: flipping
    every view does not flip their geometry."""
    result: RegistrationResult | None = None
    coarse_best = -math.inf
    mirror_check, trust_mm = checks.mirror_check and relatives is None, checks.trust_mm
    for event in register(
        xray,
        drr,
        init_pose,
        options,
        preprocessing,
        init_only,
        keep_images,
        stop,
        inputs,
        initialization,
        relatives=relatives,
    ):
        if isinstance(event, Step) and event.stage == 1 and math.isfinite(event.similarity):
            coarse_best = max(coarse_best, event.similarity)
        if isinstance(event, Done):
            result = event.result
            continue
        yield event
    if result is None:
        return None
    if mirror_check and not init_only and not result.stopped:
        check = check_mirror(xray, drr, init_pose, options, preprocessing, coarse_best, stop)
        if check is not None:
            result.checks["mirror"] = check.to_json()
            yield check
    result.verdict = assess(result, trust_mm).to_json()
    if mirror_check and not init_only and not result.stopped and result.verdict["status"] != OK:
        setup = check_setup(
            xray,
            drr,
            init_pose,
            options,
            preprocessing,
            coarse_best,
            None if spec is None else spec.orientation,
            None if spec is None else lambda: _other_renderer(spec, xray, drr),
            stop,
        )
        if setup is not None:
            result.checks["setup"] = setup.to_json()
            result.verdict = assess(result, trust_mm).to_json()
            yield setup
    return result


def _other_renderer(spec: VolumeSpec, xray: XRay, drr):
    """`drr`'s volume read in the other orientation (AP <-> PA), on the same device."""
    other = dataclasses.replace(spec, orientation=OTHER_ORIENTATION[spec.orientation], device=str(drr.device))
    return other.make_renderer(other.read(), xray.intrinsics)


def _other_side_found(result: RegistrationResult | None) -> bool:
    """Whether the setup check found the X-ray matches far better seen from the other side."""
    if result is None or result.stopped or result.final_pose is None:
        return False
    return (result.checks.get("setup") or {}).get("better") == OTHER_SIDE.name


def _keep_better(first: RegistrationResult, retry: RegistrationResult, how: dict) -> RegistrationResult:
    """The better of two runs (verdict first, then similarity), with ``checks['recovery']``
    saying what was tried and kept (the earlier recovery's record too)."""

    def rank(result: RegistrationResult) -> tuple[int, float]:
        return SEVERITY[(result.verdict or {}).get("status", FAILED)], -(result.similarity or -math.inf)

    better = rank(retry) < rank(first)
    kept = retry if better else first
    record = {
        "first_verdict": first.verdict,
        "first_similarity": first.similarity,
        **how,
        "retry_verdict": retry.verdict,
        "retry_similarity": retry.similarity,
        "kept": "retry" if better else "first",
        "seconds": first.runtime_s + retry.runtime_s,
    }
    earlier = first.checks.get("recovery")
    if earlier:
        record["earlier"] = earlier
    kept.checks["recovery"] = record
    return kept


def register_xray(
    xray: XRay | list[XRay],
    drr,
    init_pose: RigidTransform,
    spec: VolumeSpec,
    initialization: dict,
    options: RegistrationOptions,
    preprocessing: Preprocessing,
    target: Path | None = None,
    *,
    init_only: bool = False,
    keep_images: bool = False,
    outputs: Outputs | None = None,
    checks: RunChecks | None = None,
    stop: StopToken | None = None,
    xray_name: str | None = None,
    relatives: list | None = None,
) -> Iterator:
    """Register one X-ray against `drr` (built by ``spec.make_renderer``) from `init_pose`.

    Yields the engine's events (:class:`Stage`, :class:`Step`, :class:`Done`); with a `target`
    folder it then writes the result there, as ``xvr register`` does, and yields
    :class:`Written`. The CLI loops over this for each X-ray; the napari Register widget runs
    it in a worker. `xray_name` is what ``inputs.xray`` records when the X-ray has no file.
    `outputs` (:class:`.options.Outputs`) says what the `target` folder also gets: the images
    (``saveimg``; they are kept in memory with `keep_images`) and ``registration.gif``
    (``saveplot``). `checks` (:class:`.options.RunChecks`) says what follows the run: with
    ``mirror_check``, the mirrored-input check (:mod:`.checks.mirror`): a :class:`MirrorCheck` event,
    also kept in ``result.checks["mirror"]``; a result that is not ok then gets the setup check
    (:mod:`.checks.setup_check`: upside down, the other orientation), a :class:`SetupCheck` event kept
    in ``result.checks["setup"]``. Every result gets a verdict (:mod:`.checks.trust`; suspect above a
    predicted mTRE of ``trust_mm``). With ``retry_starts`` (``--multistart auto``), a result that
    is not ok is registered again from that many more starts (a :class:`Retrying` event) and the
    better verdict is kept, so easy cases cost one plain run (``result.checks["recovery"]`` says
    what happened).
    A joint registration passes a list of X-rays as `xray` and their `relatives` (see
    :func:`.engine.register`); `init_pose` is then the first view's.
    """
    outputs = outputs or Outputs()
    checks = checks or RunChecks()
    retry_starts = checks.retry_starts
    views = list(xray) if isinstance(xray, list | tuple) else [xray]
    named = xray_name or _xray_name(views[0])
    inputs = {
        "xray": named,
        **spec.describe(),
        "header": views[0].header,
        "pf_to_af": views[0].pf_to_af,
        "device": str(drr.device),
    }
    if len(views) > 1:
        inputs |= {"xrays": [_xray_name(v) for v in views], "headers": [v.header for v in views]}

    def attempt(opts, start=init_pose):
        return _attempt(
            xray,
            drr,
            start,
            opts,
            preprocessing,
            init_only,
            keep_images,
            stop,
            inputs,
            initialization,
            checks,
            relatives,
            spec,
        )

    result = yield from attempt(options)
    start = init_pose  # where the kept result started (a later retry starts there too)
    if (
        _other_side_found(result)
        and (initialization or {}).get("type") in TURNED_ROUND
        and not stop_requested(stop)
    ):
        first, turned_start = result, other_side(init_pose, spec.orientation)
        yield Retrying(0, first.verdict, other_side=True)
        turned = yield from attempt(options, turned_start)
        if turned is not None:
            result = _keep_better(first, turned, {"retried_from": "other_side"})
            start = turned_start if result is turned else init_pose
    if (
        retry_starts > options.multistart
        and result is not None
        and not init_only
        and not result.stopped
        and result.verdict["status"] != OK
        and not stop_requested(stop)
    ):
        first = result
        yield Retrying(retry_starts, first.verdict)
        retry = yield from attempt(dataclasses.replace(options, multistart=retry_starts), start)
        if retry is not None:
            result = _keep_better(first, retry, {"retried_with_starts": retry_starts})
    if result is not None:
        yield Done(result)
    if target is None or result is None:
        return
    target = Path(target)
    # what a killed earlier write left behind: atomic_dir's ".<name>.<8 random chars>.tmp", the
    # 8 chars exact so that another target's ("<name>.1") temporary folder is never taken
    for stale in target.parent.glob(f".{glob.escape(target.name)}.{'[!.]' * 8}.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    folder = write_result(result, target, saveimg=outputs.saveimg)
    if outputs.saveplot and result.trajectory:
        from ...animate import animate_result

        animate_result(folder, folder / "registration.gif", device=drr.device)
    yield Written(folder, result)
