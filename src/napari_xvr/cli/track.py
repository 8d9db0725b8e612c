"""`xvr track {dicom,fixed,restart}`: register frame 0 of a sequence, then track every frame."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import TYPE_CHECKING, cast

import click
from click.core import ParameterSource
from tqdm import tqdm

from .. import defaults
from ..defaults import PREDICTS
from ._help import CONTEXT, SectionedCommand, UserPath, section
from .progress import _line, run_sharded, summary, verdict_counts
from .register_input_args import INTRINSICS, PREPROCESSING, RENDERER, REQUIRED
from .register_run_args import LOGGING, OPTIMIZER

if TYPE_CHECKING:
    from ..io.result import RegistrationResult

T = defaults.TRACK
SEQUENCES_HELP = (
    "SEQUENCE... is one sequence: a multi-frame X-ray (cine), a folder of single-frame files "
    "(sorted, --pattern) or single-frame files in order; OUTDIR gets poses.csv, track.json and "
    "frames/<NNNN>/. Or several sequences, each a folder or a multi-frame X-ray (single-frame "
    "files cannot be mixed with them): all are read and checked before any work, then each is "
    "tracked in turn into OUTDIR/<name>/ (the folder's or file's name; names that clash get "
    "their parent folder's), with a line per sequence and a total; --exit_on judges every frame "
    "of every sequence. Under torchrun the ranks share the sequences (each rank its own device) "
    "and rank 0 prints the total. `restart -r TRACKDIR` resumes one sequence."
)
_NOT_FOR_TRACK = {  # options of `xvr register` that a tracked sequence cannot take, and why
    "init_only": "every frame is registered (use `xvr register ... --init_only` for one X-ray)",
    "saveplot": "use `xvr animate -i OUTDIR` for the tracked sequence",
    "reducefn": "every frame of a multi-frame X-ray is tracked",
    "fine_sigma": "tracking blurs the gradients as --sigma says at every scale (see docs/tracking.md)",
}


def tracking_options():
    return (
        click.option(
            "--track_scales",
            type=str,
            default=T["track_scales"].ours,
            show_default=True,
            help="Scales of each frame after the first (the first uses --scales): the "
            "previous pose is close, so the frame's own resolution alone is enough",
        ),
        click.option(
            "--track_itrs",
            type=str,
            default=T["track_itrs"].ours,
            show_default=True,
            help="Maximum LM iterations per scale of each frame after the first (it "
            "stops on convergence, after 2-4 on smooth motion)",
        ),
        click.option(
            "--predict",
            type=click.Choice(PREDICTS),
            default=T["predict"].ours,
            show_default=True,
            help="Where a frame starts: 'none' the previous frame's pose, 'velocity' the "
            "previous frame's motion applied once more (constant velocity)",
        ),
        click.option(
            "--hessian_every",
            type=click.IntRange(1, None),
            default=T["hessian_every"].ours,
            show_default=True,
            help="Each frame after the first reuses a recent frame's LM Hessian for its "
            "convergence test and uncertainty, and computes a new one at least every "
            "this many frames (the fast renderer: at the frame's first render, from its "
            "Jacobian; DiffDRR's: six renders at its optimum); 1: every frame its own "
            "(slower)",
        ),
        click.option(
            "--smooth/--no-smooth",
            default=T["smooth"].ours,
            show_default=True,
            help="Also write poses_smoothed.csv: every frame's pose fused with the other "
            "frames' (a constant-velocity smoother whose motion noise is the sequence's "
            "maximum-likelihood value; each frame's covariance from its uncertainty), "
            "with its predicted mTRE; poses.csv keeps each frame's own pose",
        ),
        click.option(
            "--start_frame",
            type=click.IntRange(0, None),
            default=0,
            show_default=True,
            help="The first frame to register (0-based); with `restart -r TRACKDIR` the "
            "run resumes there from that track's state after the frame before",
        ),
        click.option(
            "--end_frame",
            type=click.IntRange(1, None),
            default=None,
            help="Stop before this frame (default: the last frame)",
        ),
    )


def command(func):
    """The options of every `track` subcommand: `xvr register`'s groups and the tracking ones;
    the options that only `xvr register` takes are refused before anything heavy loads."""

    @functools.wraps(func)
    def checked(**kw):
        _refuse_register_only(click.get_current_context())
        return func(**kw)

    decorated = section("Tracking options", *tracking_options())(checked)
    for name, group in (
        ("Logging options", LOGGING),
        ("Optimizer options", OPTIMIZER),
        ("Preprocessing options", PREPROCESSING),
        ("Intrinsics options", INTRINSICS),
        ("Renderer options", RENDERER),
        ("Required options", REQUIRED),
    ):
        decorated = section(name, *group)(decorated)
    decorated = click.argument("sequence", nargs=-1, required=True, type=UserPath(exists=True))(decorated)
    return track.command(
        cls=SectionedCommand, context_settings=CONTEXT, help=f"{inspect.getdoc(func)}\n\n{SEQUENCES_HELP}"
    )(decorated)


def _refuse_register_only(ctx: click.Context) -> None:
    from ..errors import XvrInputError

    for name, why in _NOT_FOR_TRACK.items():
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            raise XvrInputError(f"--{name} does not apply to `xvr track`: {why}")


def registration_options(kw: dict):
    """RegistrationOptions from the command line's values of its fields (`--multistart auto`:
    a plain first frame, retried from more starts when its verdict is not ok)."""
    from ..register.options import RegistrationOptions

    names = {f.name for f in dataclasses.fields(RegistrationOptions)} & set(kw)
    values = {name: kw[name] for name in names}
    values["multistart"] = 0 if kw["multistart"] == "auto" else kw["multistart"]
    return RegistrationOptions(**values, drr_every=0)


def _run(initializer, kw, state=None) -> None:
    from ..register.engine import Preprocessing
    from ..register.options import Outputs, RunChecks
    from ..register.volume_spec import VolumeSpec
    from ..register.workflows.one_xray import AUTO_STARTS
    from ..register.workflows.shard import join
    from ..register.workflows.track import TrackOptions
    from ..register.workflows.track_io import gather_tracks
    from ..register.workflows.track_many import track_sequences
    from .register import exit_on_verdicts, follow_initializer

    options = registration_options(kw)
    track_options = TrackOptions(
        kw["track_scales"],
        kw["track_itrs"],
        kw["predict"],
        kw["start_frame"],
        kw["end_frame"],
        kw["hessian_every"],
        kw["smooth"],
    )
    spec = VolumeSpec(
        kw["volume"],
        kw["mask"],
        kw["labels"],
        kw["orientation"],
        kw["renderer"],
        kw["reverse_x_axis"],
        kw["voxel_shift"],
        kw["device"],
        density=kw["density"],
    )
    spec = follow_initializer(spec, initializer)
    shard = join(kw["device"])  # under torchrun: this rank's device and share of the sequences
    spec.device = shard.device
    events = track_sequences(
        kw["sequence"],
        spec,
        initializer,
        kw["outpath"],
        options,
        track_options,
        Preprocessing(kw["subtract_background"], kw["linearize"]),
        {k: kw[k] for k in ("sdd", "delx", "dely", "x0", "y0")},
        kw["pattern"],
        outputs=Outputs(saveimg=kw["saveimg"], overwrite=kw["overwrite"]),
        checks=RunChecks(
            kw["mirror_check"], kw["trust_mm"], AUTO_STARTS if kw["multistart"] == "auto" else 0
        ),
        state=state,
        shard=shard.part,
    )
    tracks = run_sharded(events, kw["verbose"], shard, run_track_with_progress, gather_tracks, tracks_summary)
    exit_on_verdicts([frame for written in tracks for frame in written.frames], kw["exit_on"])


def run_track_with_progress(events, verbose: int = 1, tag: str = "") -> list:
    """Consume a `track_sequences` (or `track_files`) generator: per sequence a bar over the
    frames, a line per frame with ``--verbose 2`` and its summary line; with several sequences
    a line as each begins and a total at the end. Returns the tracks written (`TrackWritten`).

    With a `tag` (a rank of a sharded run, :func:`.progress.run_sharded`) every line starts with
    it, and there are no bars and no total."""
    from ..register.checks.mirror import MirrorCheck
    from ..register.workflows.track import FrameDone, TrackStarted
    from ..register.workflows.track_io import TrackWritten
    from ..register.workflows.track_many import SequenceStarted

    bar, tracks = None, []
    try:
        for event in events:
            if isinstance(event, SequenceStarted):
                if verbose >= 1 and (event.total > 1 or tag):
                    _line(tag, f"[{event.index + 1}/{event.total}] {event.name} -> {event.path}")
            elif isinstance(event, TrackStarted):
                bar = tqdm(
                    total=event.end - event.first,
                    desc="frames",
                    ncols=90,
                    unit="frame",
                    disable=verbose < 1 or bool(tag),
                )
            elif isinstance(event, FrameDone):
                assert bar is not None  # a sequence's TrackStarted comes before its frames
                result = cast("RegistrationResult", event.result)
                bar.update(1)
                bar.set_postfix_str(_frame_text(result, short=True))
                if verbose >= 2:
                    _line(
                        tag,
                        f"  frame {event.index}: {_frame_text(result)}, "
                        f"{result.iterations} itrs, {event.seconds:.2f} s",
                    )
            elif isinstance(event, MirrorCheck) and event.mirrored_better:
                click.echo(f"{tag}  Warning: {event.message('frame 0')}", err=True)
            elif isinstance(event, TrackWritten):
                tracks.append(event)
                if bar is not None:
                    bar.close()
                    bar = None
                if verbose >= 1:
                    click.echo(f"{tag}{_summary(event)}")
    finally:
        if bar is not None:
            bar.close()
        if hasattr(events, "close"):  # Ctrl-C in this loop: the frames done are still written
            events.close()
    if verbose >= 1 and len(tracks) > 1 and not tag:
        click.echo(tracks_summary(tracks))
    return tracks


def tracks_summary(tracks) -> str:
    """The total of several tracks: '3 sequence(s), 24 frame(s): 24 ok, 0 suspect, 0 failed'."""
    stopped = sum(written.next_frame is not None for written in tracks)
    tail = f"; {stopped} stopped (see their lines for --start_frame)" if stopped else ""
    return (
        f"{len(tracks)} sequence(s), "
        f"{summary([frame for written in tracks for frame in written.frames], 'frame')}{tail}"
    )


def _frame_text(result, short: bool = False) -> str:
    from ..register.checks.trust import verdict_text

    sim = "n/a" if result.similarity is None else f"{result.similarity:.4f}"
    if short:
        return f"sim={sim} {(result.verdict or {}).get('status', 'n/a')}"
    return f"similarity {sim}; {verdict_text(result)}"


def _summary(event) -> str:
    counts = verdict_counts(event.frames)
    tail = "" if event.next_frame is None else f"; stopped: resume with --start_frame {event.next_frame}"
    return (
        f"-> {event.path}: {len(event.frames)} frame(s), {counts['ok']} ok, "
        f"{counts['suspect']} suspect, {counts['failed']} failed{tail}"
        f"{_smoothed_text(event.smoothed)}"
    )


def _smoothed_text(smoothed) -> str:
    return "" if smoothed is None else f"; smoothed (poses_smoothed.csv): {smoothed.summary()}"


@click.group(context_settings=CONTEXT)
def track():
    """Track a fluoroscopy sequence: frame 0 registered as `xvr register`, then each frame
    from the one before.

    SEQUENCE is a multi-frame X-ray DICOM (cine), a folder of single-frame files (sorted,
    --pattern) or frame files in order. Writes OUTDIR/poses.csv, OUTDIR/track.json and a result
    folder per frame, OUTDIR/frames/<NNNN>/. Several folders or multi-frame X-rays are tracked
    in turn, each into OUTDIR/<name>/, and shared among the ranks under torchrun.
    """


@command
def dicom(**kw):
    """Initialize frame 0 from the DICOM header (C-arm angles and source-to-patient distance)."""
    from ..register.initializers import DicomInitializer

    _run(DicomInitializer(kw["orientation"]), kw)


@command
@section(
    "Initial pose options",
    click.option(
        "--rot",
        type=str,
        required=True,
        help="Rotation, comma-separated (degrees for euler_angles), e.g. 0,0,0",
    ),
    click.option("--xyz", type=str, required=True, help="Translation in mm, comma-separated, e.g. 0,850,0"),
)
def fixed(**kw):
    """Initialize frame 0 from a fixed pose (--rot, --xyz)."""
    from ..register.initializers import FixedInitializer

    _run(FixedInitializer(kw["rot"], kw["xyz"], kw["parameterization"], kw["convention"]), kw)


@command
@section(
    "Initial pose options",
    click.option(
        "-r",
        "--previous",
        type=UserPath(exists=True),
        required=True,
        help="A previous result (its folder or result.json): frame --start_frame is "
        "registered in full from its pose; or a track folder (OUTDIR of `xvr track`): "
        "the run resumes at --start_frame from the state it recorded after the frame "
        "before, with the same poses",
    ),
)
def restart(**kw):
    """Initialize from a previous result, or resume a tracked sequence."""
    from pathlib import Path

    from ..errors import XvrInputError
    from ..register.initializers import RestartInitializer
    from ..register.workflows.track_io import resume_state

    previous = Path(kw["previous"])
    if (previous / "track.json").is_file():
        if kw["start_frame"] < 1:
            raise XvrInputError(
                f"-r {previous} is a track: give --start_frame (>= 1), the frame to resume at"
            )
        _run(RestartInitializer(previous), kw, resume_state(previous, kw["start_frame"] - 1))
        return
    _run(RestartInitializer(previous), kw)


COMMANDS = [track]
