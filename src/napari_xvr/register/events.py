"""Small typed progress events yielded by the registration engine."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..io.result import RegistrationResult


@dataclass(frozen=True)
class Stage:
    """A new resolution begins."""

    index: int  # 1-based
    n_stages: int
    scale: float  # detector downsampling factor relative to the X-ray (e.g. 8 means 1/8)
    height: int
    width: int
    max_itrs: int  # over all starts when this scale runs from several
    n_starts: int = 1  # > 1: a multi-start first scale (options.multistart + 1)


@dataclass(frozen=True)
class Step:
    """One optimiser iteration."""

    stage: int
    itr: int  # 0-based within the stage
    total_itr: int  # 0-based over all stages
    similarity: float
    params: tuple[float, ...]  # r1 r2 r3 (deg, ZXY) tx ty tz (mm)
    matrix: np.ndarray  # 4x4 pose, float64
    lr_rot: float
    lr_xyz: float
    time_s: float
    # (H, W) float32: adam every `drr_every` iterations, lm every accepted step; none if drr_every=0
    drr: np.ndarray | None = None
    fixed: np.ndarray | None = None  # the X-ray at this stage's size, with the first DRR
    damping: float | None = None  # Levenberg-Marquardt's damping (lr_rot/lr_xyz are NaN then)
    start: int = 0  # which starting pose of a multi-start first scale (0: the given one)
    view_drrs: tuple = ()  # joint registration: every view's DRR when `drr` is shown
    view_fixed: tuple = ()  # joint registration: every view's X-ray with the first DRR


@dataclass(frozen=True)
class Done:
    """The run ended; `result` is the final :class:`~napari_xvr.io.result.RegistrationResult`."""

    result: RegistrationResult


class StopToken:
    """Thread-safe flag: `stop()` ends a run after the current iteration, keeping its best pose."""

    def __init__(self):
        self._event = threading.Event()

    def stop(self) -> None:
        self._event.set()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()
