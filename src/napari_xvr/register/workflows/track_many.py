"""Tracking from files into track folders: one sequence (:func:`track_files`) or several, shared
among ``torchrun`` ranks (:func:`track_sequences`), written as :mod:`.track_io` lays them out.

The folder is built beside its final place and appears in one rename when the run ends, whole:
finished, stopped, or interrupted (Ctrl-C keeps the frames done). An existing track folder is
replaced only with `overwrite`; a folder that holds anything else is never touched.
"""

from __future__ import annotations

import glob
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from diffdrr.pose import RigidTransform

from ...errors import XvrInputError
from ...geometry import Intrinsics, pose_from_matrix
from ...io.atomic import atomic_dir
from ..engine import Preprocessing, StopToken, check_stages, check_view
from ..options import Outputs, RegistrationOptions, RunChecks
from ..volume_spec import VolumeSpec
from .pipeline import describe, plan_outputs
from .sequence import Frames, read_frames, split_sequences
from .shard import ready_share
from .track import FrameDone, TrackDone, TrackOptions, TrackState, track
from .track_io import TRACK_FILES, FrameWritten, TrackWriter, TrackWritten, check_output, frame_folder


@dataclass(frozen=True)
class SequenceStarted:
    """One of the sequences of :func:`track_sequences` begins: `index` of `total` (0-based, in
    the order given), shown as `name`, written to the track folder `path`."""

    index: int
    total: int
    name: str
    path: Path


def plan_tracks(sequences: Sequence[Sequence], outpath, overwrite: bool = False) -> list[Path]:
    """The track folder of each sequence (lists of :func:`read_frames` items), decided and
    checked before any work, the same in every process: for one sequence `outpath` itself; for
    several ``outpath/<name>/`` with the name of the sequence's folder or multi-frame file
    (names that clash get their parent folder's name, then a number, as ``xvr register``'s
    result folders do). Each is refused as :func:`check_output` refuses one."""
    if len(sequences) == 1:
        return [check_output(outpath, overwrite)]
    root = Path(outpath).expanduser()
    if root.exists() and not root.is_dir():
        raise XvrInputError(f"-o {root}: is a file; give a folder for the tracked sequences")
    if any((root / name).exists() for name in TRACK_FILES):
        raise XvrInputError(
            f"-o {root}: holds a tracked sequence itself, and {len(sequences)} "
            "sequences go to a folder each inside -o; give another output folder"
        )
    roots = [Path(items[0]).expanduser().resolve() for items in sequences]
    folders = plan_outputs(roots, root, overwrite=True)  # the names only: tracks are checked here
    return [check_output(folder, overwrite) for folder in folders]


@dataclass
class _Planned:
    """A sequence checked before any work: its items, track folder and first frame's start.
    Its frames are kept when it is the only one, else read again when it runs (memory does not
    grow with the number of sequences)."""

    items: list
    outpath: Path
    frames: Frames | None
    start: RigidTransform | None  # the first frame's initial pose (None when resuming)
    intrinsics: Intrinsics
    where: str  # the first frame's name, for messages

    @property
    def name(self) -> str:
        """The sequence as given: its folder or file, or its first file and how many more."""
        first = str(self.items[0])
        return first if len(self.items) == 1 else f"{first} and {len(self.items) - 1} more"


def track_files(
    sequence: Sequence,
    spec: VolumeSpec,
    initializer: Callable,
    outpath,
    options: RegistrationOptions | None = None,
    track_options: TrackOptions | None = None,
    preprocessing: Preprocessing | None = None,
    intrinsic_overrides: dict | None = None,
    pattern: str = "*.dcm",
    *,
    outputs: Outputs | None = None,
    checks: RunChecks | None = None,
    stop: StopToken | None = None,
    state: TrackState | None = None,
) -> Iterator:
    """Track the frames in `sequence` (a multi-frame file, a folder, or frame files) and write
    `outpath` (see the module docstring); yields progress events, last :class:`TrackWritten`.
    `outputs` (:class:`.options.Outputs`): ``saveimg`` writes each frame's images, ``overwrite``
    replaces an existing track (tracking writes no ``registration.gif``: ``saveplot`` is
    refused); `checks` (:class:`.options.RunChecks`) as :func:`.track.track`'s."""
    outputs = _track_outputs(outputs)
    outpath = check_output(outpath, outputs.overwrite)
    yield from _track_planned(
        [(list(sequence), outpath)],
        spec,
        initializer,
        options,
        track_options,
        preprocessing,
        intrinsic_overrides,
        pattern,
        outputs,
        checks,
        stop,
        state,
    )


def _track_outputs(outputs: Outputs | None) -> Outputs:
    outputs = outputs or Outputs()
    if outputs.saveplot:
        raise XvrInputError(
            "saveplot: tracking writes no registration.gif; animate a track with `xvr animate -i TRACKDIR`"
        )
    return outputs


def track_sequences(
    items: Sequence,
    spec: VolumeSpec,
    initializer: Callable,
    outpath,
    options: RegistrationOptions | None = None,
    track_options: TrackOptions | None = None,
    preprocessing: Preprocessing | None = None,
    intrinsic_overrides: dict | None = None,
    pattern: str = "*.dcm",
    *,
    outputs: Outputs | None = None,
    checks: RunChecks | None = None,
    stop: StopToken | None = None,
    state: TrackState | None = None,
    shard: tuple[int, int] = (0, 1),
) -> Iterator:
    """``xvr track``'s SEQUENCE arguments: the sequences in `items` (:func:`.split_sequences`),
    each tracked in turn into its folder (:func:`plan_tracks`; one sequence: `outpath` as
    :func:`track_files` writes it). Every sequence is read and checked, and every folder
    checked, before any work. With `shard` ``(rank, world)`` (``torchrun``, :mod:`.shard`),
    only this rank's share of the planned sequences is tracked. Yields per sequence
    :class:`SequenceStarted`, then :func:`track_files`' events, last its :class:`TrackWritten`.
    `state` (a resumed track) continues one sequence only. `outputs` and `checks` as
    :func:`track_files`'."""
    outputs = _track_outputs(outputs)
    sequences = split_sequences(items, **(intrinsic_overrides or {}))
    if state is not None and len(sequences) > 1:
        raise XvrInputError(
            f"{len(sequences)} sequences given ({', '.join(str(s[0]) for s in sequences)}), but "
            "resuming a track (-r TRACKDIR) continues one sequence: give only the sequence that "
            "track recorded, and track the others without -r"
        )
    folders = plan_tracks(sequences, outpath, outputs.overwrite)
    yield from _track_planned(
        list(zip(sequences, folders, strict=True)),
        spec,
        initializer,
        options,
        track_options,
        preprocessing,
        intrinsic_overrides,
        pattern,
        outputs,
        checks,
        stop,
        state,
        shard,
        announce=True,
    )


def _track_planned(
    planned: list,
    spec: VolumeSpec,
    initializer: Callable,
    options: RegistrationOptions | None,
    track_options: TrackOptions | None,
    preprocessing: Preprocessing | None,
    intrinsic_overrides: dict | None,
    pattern: str,
    outputs: Outputs,
    checks: RunChecks | None,
    stop: StopToken | None,
    state: TrackState | None,
    shard: tuple[int, int] = (0, 1),
    announce: bool = False,
) -> Iterator:
    """Check every planned ``(items, folder)`` (frames, initial pose, scales, view), then
    track this rank's share of them one after the other on one renderer."""
    options = options or RegistrationOptions()
    track_options = track_options or TrackOptions()
    checks = checks or RunChecks()
    overrides = intrinsic_overrides or {}
    checked = []
    for items, outpath in planned:
        frames = read_frames(items, pattern, **overrides)
        first = track_options.frame_range(len(frames))[0]
        start = None if state is not None else initializer(frames.frame(first))
        checked.append(
            _Planned(
                items,
                outpath,
                frames if len(planned) == 1 else None,
                start,
                frames.intrinsics,
                frames.name(first),
            )
        )
    subject = spec.read()
    for plan in checked:
        if state is None:  # the first frame registered in full; a resumed run tracks it
            check_stages(options, plan.intrinsics, plan.where)
        check_stages(track_options.frame_options(options), plan.intrinsics, f"{plan.where} (--track_scales)")
    drr = spec.make_renderer(subject, checked[0].intrinsics)
    for plan in checked:
        check_view(
            drr,
            plan.start if state is None else pose_from_matrix(state.start(track_options.predict)),
            options,
            plan.intrinsics,
            plan.where,
        )
    initialization = (
        describe(initializer) if state is None else {"type": "resume", "from": describe(initializer)}
    )
    for index in ready_share(len(checked), shard):
        if stop is not None and stop.stopped:
            break
        plan = checked[index]
        if announce:
            yield SequenceStarted(index, len(checked), plan.name, plan.outpath)
        frames = plan.frames if plan.frames is not None else read_frames(plan.items, pattern, **overrides)
        header = {
            "inputs": {"sequence": frames.describe(), **spec.describe()},
            "options": options.to_dict(),
            "track_options": track_options.to_dict(),
            "initialization": initialization,
            "preprocessing": {
                k: v for k, v in vars(preprocessing or Preprocessing()).items() if k != "reducefn"
            },
            "trust_mm": checks.trust_mm,
        }
        events = track(
            frames,
            drr,
            plan.start,
            spec,
            options,
            track_options,
            preprocessing,
            initialization,
            stop,
            state,
            checks,
        )
        yield from _write(events, plan.outpath, frames, header, outputs.saveimg)


def _write(events: Iterator, outpath: Path, frames: Frames, header: dict, saveimg: bool) -> Iterator:
    """Consume the tracker's events into a folder built beside `outpath` (see the module)."""
    interrupted, done = None, None
    for stale in outpath.parent.glob(f".{glob.escape(outpath.name)}.{'[!.]' * 8}.tmp"):
        shutil.rmtree(stale, ignore_errors=True)  # what a killed earlier run left behind
    with atomic_dir(outpath) as tmp:
        writer = TrackWriter(tmp, header, saveimg)
        try:
            for event in events:
                yield event
                if isinstance(event, FrameDone):
                    yield writer.frame(event, frames.name(event.index))
                elif isinstance(event, TrackDone):
                    done = event
                    writer.save("stopped" if event.next_frame is not None else "complete", event)
        except (KeyboardInterrupt, GeneratorExit) as err:
            if not writer.rows:
                raise
            interrupted = err
            writer.save("interrupted")
            writer.drop_unlisted()
    if interrupted is not None:
        raise interrupted
    yield TrackWritten(
        outpath,
        [FrameWritten(frame_folder(outpath, w.index), w.index, w.result) for w in writer.written],
        done.stopped if done else True,
        done.next_frame if done else None,
        done.smoothed if done else None,
    )
