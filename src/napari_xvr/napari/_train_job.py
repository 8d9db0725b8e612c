"""The Train widget's job: a training (or its resume) in a worker, progress throttled."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from ..imaging import unit
from ._jobs import guarded


@dataclass(frozen=True)
class TrainProgress:
    """Throttled training progress: losses since the last event and an optional mosaic."""

    itrs: tuple[int, ...]
    losses: tuple[float, ...]
    itr: int
    n_total_itrs: int
    step_time_s: float
    mosaic: np.ndarray | None  # (2H, N*W) float32: sampled DRRs on top, predicted poses below

    def merged(self, later: TrainProgress) -> TrainProgress:
        """This and a later event as one: values appended, the latest mosaic kept."""
        return replace(
            later,
            itrs=self.itrs + later.itrs,
            losses=self.losses + later.losses,
            mosaic=later.mosaic if later.mosaic is not None else self.mosaic,
        )


def mosaic(drr: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Sample DRRs in the top row, the DRRs of the predicted poses below, each min-max scaled."""

    def row(images):
        return np.concatenate([unit(np.asarray(img, dtype=np.float32)) for img in images], axis=1)

    return np.concatenate([row(drr), row(pred)], axis=0).astype(np.float32)


@guarded
def training(
    config=None, stop=None, resume_from=None, min_interval_s: float = 0.3, overrides: dict | None = None
):
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
                yield TrainProgress(
                    tuple(itrs), tuple(losses), event.itr, total, float(np.mean(times[-20:])), image
                )
                itrs, losses, image, last = [], [], None, now
        elif isinstance(event, TrainStarted | Checkpointed):
            total = getattr(event, "n_total_itrs", total)
            yield event
        elif isinstance(event, TrainDone):
            if itrs:
                yield TrainProgress(
                    tuple(itrs), tuple(losses), itrs[-1], total, float(np.mean(times[-20:])), image
                )
            yield event
