"""`xvr register {model,dicom,fixed,restart}`: initialise a pose, refine it, write results."""

from __future__ import annotations

import sys

import click
from click.core import ParameterSource

from ..register.options import Outputs, RegistrationOptions, RunChecks
from ._help import CONTEXT, UserPath, section
from .progress import run_sharded
from .register_input_args import REQUIRED, XRAY_ARG
from .register_run_args import common
from .upstream_args import UpstreamCompatibleCommand as SectionedCommand


def _run(initializer, kw):
    from ..io.xray import check_reducefn
    from ..register.engine import Preprocessing
    from ..register.volume_spec import VolumeSpec
    from ..register.workflows.one_xray import AUTO_STARTS
    from ..register.workflows.pipeline import register_files
    from ..register.workflows.shard import join

    auto = kw["multistart"] == "auto"

    options = RegistrationOptions(
        scales=kw["scales"],
        n_itrs=kw["n_itrs"],
        optimizer=kw["optimizer"],
        slab_mm=kw["slab_mm"],
        multistart=0 if auto else kw["multistart"],
        multistart_rot=kw["multistart_rot"],
        multistart_xyz=kw["multistart_xyz"],
        parameterization=kw["parameterization"],
        convention=kw["convention"],
        lr_rot=kw["lr_rot"],
        lr_xyz=kw["lr_xyz"],
        lr_reduce_factor=kw["lr_reduce_factor"],
        patience=kw["patience"],
        threshold=kw["threshold"],
        max_n_plateaus=kw["max_n_plateaus"],
        metric=kw["metric"],
        equalize=kw["equalize"],
        crop=kw["crop"],
        patch_size=kw["patch_size"],
        sigma=kw["sigma"],
        fine_sigma=kw["fine_sigma"],
        beta=kw["beta"],
        xray_mask=kw["xray_mask"],
        prior_deg=kw["prior_deg"],
        prior_mm=kw["prior_mm"],
        drr_every=0,
    )
    reducefn = check_reducefn(kw["reducefn"])
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
    preprocessing = Preprocessing(kw["subtract_background"], kw["linearize"], reducefn)
    if kw["joint"]:
        _run_joint(initializer, kw, spec, options, preprocessing, AUTO_STARTS if auto else 0)
        return
    shard = join(kw["device"])  # under torchrun: this rank's device and share of the X-rays
    spec.device = shard.device
    events = register_files(
        kw["xray"],
        spec,
        initializer,
        kw["outpath"],
        options,
        preprocessing,
        {k: kw[k] for k in ("sdd", "delx", "dely", "x0", "y0")},
        kw["pattern"],
        init_only=kw["init_only"],
        outputs=outputs_of(kw),
        checks=RunChecks(kw["mirror_check"], kw["trust_mm"], AUTO_STARTS if auto else 0),
        shard=shard.part,
    )
    written = run_sharded(events, kw["verbose"], shard)
    exit_on_verdicts(written, kw["exit_on"])


def outputs_of(kw) -> Outputs:
    """``--saveimg``, ``--saveplot`` (the animation replays the images: it saves them too) and
    ``--overwrite``."""
    return Outputs(kw["saveimg"] or kw["saveplot"], kw["saveplot"], kw["overwrite"])


def follow_initializer(spec, initializer):
    """`spec` with the flip and orientation the core's rule picks (:mod:`..register.resolve`):
    given on the command line, else the initializer's record (a checkpoint, a previous
    result), else the default; a note when a given one contradicts the record."""
    from ..register.resolve import FOLLOWED, resolve_spec

    ctx = click.get_current_context(silent=True)
    explicit = {
        name
        for name in FOLLOWED
        if ctx is None or ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
    }
    spec, notes = resolve_spec(spec, initializer, explicit)
    for note in notes:
        click.echo(f"Note: {note}", err=True)
    return spec


def _run_joint(initializer, kw, spec, options, preprocessing, retry_starts: int) -> None:
    """``--joint``: every X-ray given is a view of one registration."""
    from ..distributed import launched
    from ..errors import XvrInputError
    from ..register.workflows.joint import register_joint_files
    from .progress import run_with_progress

    if launched():
        raise XvrInputError(
            "--joint registers one set of views in one process; run it without "
            "torchrun (torchrun shards many X-rays registered one by one)"
        )

    events = register_joint_files(
        kw["xray"],
        spec,
        initializer,
        kw["outpath"],
        options,
        preprocessing,
        {k: kw[k] for k in ("sdd", "delx", "dely", "x0", "y0")},
        kw["pattern"],
        geometry=kw["geometry"],
        init_view=kw["init_view"],
        init_only=kw["init_only"],
        outputs=outputs_of(kw),
        checks=RunChecks(kw["mirror_check"], kw["trust_mm"], retry_starts),
    )
    exit_on_verdicts(run_with_progress(events, kw["verbose"]), kw["exit_on"])


def exit_on_verdicts(written, exit_on: str) -> None:
    """Exit status 3 when a result's verdict is `exit_on` or worse (results are all written)."""
    from ..register.checks.trust import SEVERITY, worst

    if exit_on == "never" or not written:
        return
    status = worst((w.result.verdict or {}).get("status", "ok") for w in written)
    if SEVERITY[status] >= SEVERITY[exit_on]:
        click.echo(
            f"Exit status 3: a result is {status} (--exit_on {exit_on}); see the "
            "verdicts in the result.json files",
            err=True,
        )
        sys.exit(3)


@click.group(context_settings=CONTEXT)
def register():
    """Use gradient-based optimization to register XRAY to a CT/MR."""


@register.command(cls=SectionedCommand, context_settings=CONTEXT)
@XRAY_ARG
@section("Required options", *REQUIRED)
@common
def dicom(**kw):
    """Initialize from the DICOM header (C-arm angles and source-to-patient distance)."""
    from ..register.initializers import DicomInitializer

    _run(DicomInitializer(kw["orientation"]), kw)


@register.command(cls=SectionedCommand, context_settings=CONTEXT)
@XRAY_ARG
@section("Required options", *REQUIRED)
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
@common
def fixed(**kw):
    """Initialize every X-ray from a fixed pose (--rot, --xyz)."""
    from ..register.initializers import FixedInitializer

    _run(FixedInitializer(kw["rot"], kw["xyz"], kw["parameterization"], kw["convention"]), kw)


@register.command(cls=SectionedCommand, context_settings=CONTEXT)
@XRAY_ARG
@section("Required options", *REQUIRED)
@section(
    "Initial pose options",
    click.option(
        "-r",
        "--previous",
        type=UserPath(exists=True),
        required=True,
        help="A previous result: its folder, its result.json, or the OUTDIR holding "
        "<stem>/result.json for each X-ray",
    ),
)
@common
def restart(**kw):
    """Initialize from a previous registration result."""
    from ..register.initializers import RestartInitializer

    _run(RestartInitializer(kw["previous"]), kw)  # its flip and orientation: follow_initializer


@register.command(cls=SectionedCommand, context_settings=CONTEXT)
@XRAY_ARG
@section("Required options", *REQUIRED)
@section(
    "Initial pose options",
    click.option(
        "--landmarks",
        type=UserPath(exists=True),
        required=True,
        help="Landmark pairs: CSV column,row,x,y,z (X-ray pixel, pixel centres at whole "
        'numbers; volume mm) or JSON {"frame": ..., "pairs": [{"xray": [c, r], '
        '"volume": [x, y, z]}]}; a folder of <stem>.csv/.json for several X-rays',
    ),
    click.option(
        "--volume_points",
        type=UserPath(exists=True),
        default=None,
        help="The volume's points from another file (a 3D Slicer .mrk.json, CSV x,y,z "
        "or JSON); --landmarks then holds the X-ray's points only (column,row), paired "
        "by label, else in order",
    ),
    click.option(
        "--frame",
        type=click.Choice(["RAS", "LPS", "world"]),
        default=None,
        help="The volume points' frame when the file does not say: RAS/LPS (the "
        "volume file's patient frame; default RAS) or world (napari-xvr's: the "
        "volume's centre at the origin). A .mrk.json says its own",
    ),
)
@common
def landmarks(**kw):
    """Initialize from landmark pairs (4 or more): the pose that reprojects them best."""
    from ..register.initializers import LandmarkInitializer

    initializer = LandmarkInitializer(
        kw["landmarks"],
        kw["volume"],
        kw["volume_points"],
        kw["frame"],
        kw["orientation"],
        kw["reverse_x_axis"],
    )
    _run(initializer, kw)


COMMANDS = [register]
