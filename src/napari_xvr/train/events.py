"""What a training run reports, one small event at a time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class TrainStarted:
    start_itr: int
    n_total_itrs: int
    outpath: Path
    device: str
    n_parameters: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainStep:
    """One iteration; `drr`/`pred` (up to 4 images, (N, H, W)) every ``n_drr_every_itrs``
    (`pred` is None with ``geodesic_only``: no DRRs of the predicted poses are rendered)."""

    itr: int
    loss: float
    ncc: float
    geo: float
    rgeo: float
    tgeo: float
    dice: float
    haus: float
    lr: float
    kept: float
    time_s: float
    drr: np.ndarray | None = None
    pred: np.ndarray | None = None


@dataclass(frozen=True)
class Checkpointed:
    itr: int  # the iteration a restart resumes at
    path: Path


@dataclass(frozen=True)
class TrainDone:
    itr: int
    path: Path | None  # the last checkpoint
    elapsed_s: float
    stopped: bool
