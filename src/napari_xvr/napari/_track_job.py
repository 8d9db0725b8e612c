"""The Track widget's job: a sequence layer tracked with the core's :func:`track` in a worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from ..io.xray import XRay
from ..register import Preprocessing, RegistrationOptions, Step
from ..register.options import RunChecks
from ..register.volume_spec import VolumeSpec
from ..register.workflows.pipeline import describe
from ..register.workflows.track import FrameDone, FrameStarted, TrackDone, TrackOptions, TrackState, track
from . import api
from ._jobs import LayerSnapshot, guarded
from ._layers import frames_of
from ._register_job import standardized

if TYPE_CHECKING:
    from diffdrr.pose import RigidTransform

    from ..io.result import RegistrationResult


@dataclass
class LayerFrames:
    """A sequence layer (frames x rows x cols, or one 2D X-ray) as the core's frames."""

    snapshot: LayerSnapshot

    @property
    def data(self) -> np.ndarray:
        return frames_of(self.snapshot.data).astype(np.float32, copy=False)

    def __len__(self) -> int:
        return self.data.shape[0]

    def frame(self, index: int) -> XRay:
        one = LayerSnapshot(self.snapshot.name, self.data[index], self.snapshot.metadata)
        return replace(api.xray_from_layer(one), path=self.path(index), reducefn=index)

    def path(self, index: int) -> Path:
        return Path(str(self.snapshot.metadata.get("path") or self.snapshot.name))

    def name(self, index: int) -> str:
        return f"{self.snapshot.name} [frame {index}]"

    def reducefn(self, index: int) -> int:
        return index


@dataclass
class TrackJob:
    """Everything one tracking run needs, captured on the main thread."""

    sequence: LayerSnapshot
    volume: LayerSnapshot
    spec: VolumeSpec
    make_initializer: Callable[[], Callable[[XRay], RigidTransform]] | None  # None: resumed from `state`
    options: RegistrationOptions  # the first frame's (registered in full)
    track_options: TrackOptions
    state: TrackState | None = None  # resume after the frame before track_options.start_frame
    min_interval_s: float = 0.2


@dataclass(frozen=True)
class FrameProgress:
    """Throttled progress inside a frame."""

    similarity: float
    itr: int


@dataclass(frozen=True)
class Tracked:
    """One frame done: its result, the DRR at its pose (standardized) and the state after it."""

    index: int
    result: object  # RegistrationResult
    drr: np.ndarray
    seconds: float
    state: TrackState


@guarded
def tracking(job: TrackJob, stop):
    """Track the job's frames; yields FrameStarted, FrameProgress, Tracked, TrackDone (or
    Failed)."""
    from ..render import render, set_intrinsics

    frames = LayerFrames(job.sequence)
    start = job.track_options.start_frame
    first = frames.frame(start)
    init, initialization = None, None
    if job.state is None:
        assert job.make_initializer is not None  # None only with a state to resume from
        initializer = job.make_initializer()
        init, initialization = initializer(first), describe(initializer)
    subject = api.subject_from_layers(job.volume, None, job.spec.labels, job.spec.orientation)
    full = first.intrinsics
    drr = job.spec.make_renderer(subject, full)
    last = 0.0
    for event in track(
        frames,
        drr,
        init,
        job.spec,
        job.options,
        job.track_options,
        Preprocessing(),
        initialization,
        stop,
        job.state,
        RunChecks(mirror_check=False),
    ):
        if isinstance(event, FrameStarted | TrackDone):
            yield event
        elif isinstance(event, Step) and time.perf_counter() - last >= job.min_interval_s:
            last = time.perf_counter()
            yield FrameProgress(event.similarity, event.total_itr)
        elif isinstance(event, FrameDone):
            set_intrinsics(drr, full)
            pose = cast("RegistrationResult", event.result).pose
            image = render(drr, api.as_pose(pose))[0, 0].cpu().numpy()
            yield Tracked(event.index, event.result, standardized(image), event.seconds, event.state)
