"""`xvr register {model,dicom,fixed,restart}`: initialise a pose, refine it, write results."""

from __future__ import annotations

import click

from ..register.options import DEFAULT_ITRS, OPTIMIZERS, RegistrationOptions
from ._help import CONTEXT, SectionedCommand, section
from .progress import run_with_progress

REQUIRED = (
    click.option("-v", "--volume", type=click.Path(exists=True), required=True,
                 help="Input CT volume (NIfTI/NRRD/MHA or a DICOM series folder)"),
    click.option("-o", "--outpath", type=click.Path(), required=True,
                 help="Directory for saving registration results (one folder per X-ray)"),
)
RENDERER = (
    click.option("-m", "--mask", type=click.Path(exists=True), default=None,
                 help="Labelmap for the CT volume"),
    click.option("--labels", type=str, default=None,
                 help="Labels in mask to exclusively render (comma-separated)"),
    click.option("--orientation", type=click.Choice(["AP", "PA"]), default="AP", show_default=True,
                 help="Orientation of the CT volume (C-arm frame of reference)"),
    click.option("--reverse_x_axis/--no-reverse_x_axis", default=True, show_default=True,
                 help="Obey radiologic convention (e.g., heart on right)"),
    click.option("--renderer", type=click.Choice(["fast", "trilinear", "siddon"]), default="fast",
                 show_default=True,
                 help="Renderer: fast (napari-xvr's slice-wise ray marcher, DiffDRR's geometry, images "
                 "within 1e-3 of DiffDRR trilinear, ~8x quicker with gradients), or DiffDRR's "
                 "trilinear (xvr's default) or siddon"),
    click.option("--voxel_shift", type=float, default=0.5, show_default=True,
                 help="Position of voxel: 0.5 samples voxel centres (DiffDRR's default; xvr's is 0, "
                 "which shifts the DRR by half a voxel and biases the pose by as much)"),
    click.option("--slab_mm", type=float, default=6.0, show_default=True,
                 help="fast renderer: while optimising, average the CT along the rays' main axis "
                 "over slabs this thick (mm) and march slab by slab (DRRs within ~3e-3 relative "
                 "L2 at C-arm poses, 2-4x quicker); 0 turns it off. The final DRRs use every slice"),
    click.option("--device", type=str, default="auto", show_default=True,
                 help="Compute device: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps"),
)
INTRINSICS = (
    click.option("--sdd", type=float, default=None,
                 help="Source-to-detector distance in mm (overrides/supplies the header's)"),
    click.option("--delx", type=float, default=None, help="Column pixel spacing in mm"),
    click.option("--dely", type=float, default=None, help="Row pixel spacing in mm (default: delx)"),
    click.option("--x0", type=float, default=None, help="Principal point x-offset in mm"),
    click.option("--y0", type=float, default=None, help="Principal point y-offset in mm"),
)
_D = RegistrationOptions()
PREPROCESSING = (
    click.option("--crop", type=int, default=0, show_default=True,
                 help="Center crop the X-ray image (pixels removed per axis)"),
    click.option("--subtract_background", is_flag=True, help="Subtract mode X-ray image intensity"),
    click.option("--linearize", is_flag=True, help="Convert X-ray from exponential to linear form"),
    click.option("--equalize/--no-equalize", default=_D.equalize, show_default=True,
                 help="Apply (differentiable) histogram equalization to X-rays/DRRs during "
                 "optimization. On by default (xvr: off): it makes the similarity blind to the "
                 "detector's intensity curve, which otherwise biases depth by ~1 mm"),
    click.option("--reducefn", type=str, default="max", show_default=True,
                 help="If DICOM is multiframe: max, sum, or a frame index"),
    click.option("--pattern", type=str, default="*.dcm", show_default=True,
                 help="Pattern rule for glob if XRAY is a directory"),
)
OPTIMIZER = (
    click.option("--scales", type=str, default=_D.scales, show_default=True,
                 help="Scales of downsampling for multiscale registration (comma-separated). "
                 "Default 8,4,2 (xvr: 8): the finer scales are what bring synthetic cases "
                 "under 1 mm mTRE"),
    click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=_D.optimizer,
                 show_default=True,
                 help="lm: Levenberg-Marquardt on the 6 pose parameters (3-10 iterations per "
                 "scale; on the benchmark 13-15x faster than xvr's defaults at lower mTRE); adam: "
                 "xvr's Adam with ReduceLROnPlateau (uses --lr_rot, --lr_xyz, --patience, "
                 "--threshold, --max_n_plateaus). From starts more than ~15 deg / 50 mm off, "
                 "add --multistart 8"),
    click.option("--multistart", type=click.IntRange(0), default=_D.multistart, show_default=True,
                 help="Also run the first scale from this many poses around the start (up to "
                 "--multistart_rot deg and --multistart_xyz mm off) and go on from the best. For "
                 "starts more than ~15 deg / 50 mm off: with 8, 10/10 cases under 1 mm from 25 deg / 80 mm "
                 "(lm alone 3/10, adam 8/10), ~2 s more per X-ray on a 2-core CPU"),
    click.option("--multistart_rot", type=float, default=_D.multistart_rot, show_default=True,
                 help="Largest offset per rotation angle (deg) of the --multistart poses"),
    click.option("--multistart_xyz", type=float, default=_D.multistart_xyz, show_default=True,
                 help="Largest offset per translation axis (mm) of the --multistart poses"),
    click.option("--n_itrs", type=str, default=None,
                 help="Maximum iterations at each scale (comma-separated). Default: "
                 f"{DEFAULT_ITRS['lm']} for lm (it stops on convergence), "
                 f"{DEFAULT_ITRS['adam']} for adam (xvr: 500 at its one scale)"),
    click.option("--parameterization", type=str, default=_D.parameterization, show_default=True,
                 help="Parameterization of SO(3) for optimization"),
    click.option("--convention", type=str, default=_D.convention, show_default=True,
                 help="If parameterization is Euler angles, specify order"),
    click.option("--lr_rot", type=float, default=_D.lr_rot, show_default=True,
                 help="Initial step size for rotational parameters"),
    click.option("--lr_xyz", type=float, default=_D.lr_xyz, show_default=True,
                 help="Initial step size for translational parameters"),
    click.option("--patience", type=int, default=_D.patience, show_default=True,
                 help="Number of itrs without improvement before decreasing the learning rate"),
    click.option("--threshold", type=float, default=_D.threshold, show_default=True,
                 help="Threshold for measuring the new optimum"),
    click.option("--max_n_plateaus", type=int, default=_D.max_n_plateaus, show_default=True,
                 help="Number of times loss can plateau before moving to next scale"),
    click.option("--patch_size", type=int, default=_D.patch_size, show_default=True,
                 help="Patch size (px) of the local NCC terms"),
    click.option("--sigma", type=float, default=_D.sigma, show_default=True,
                 help="Gaussian blur (px) before the gradient NCC. Default 1 (xvr: 5): a "
                 "sharper gradient term locates edges, hence depth, 3x more precisely"),
    click.option("--beta", type=float, default=_D.beta, show_default=True,
                 help="Weight of mNCC vs gradient-NCC in the similarity"),
)
LOGGING = (
    click.option("--init_only", is_flag=True,
                 help="Directly return the initial pose estimate (no iterative pose refinement)"),
    click.option("--saveimg", is_flag=True,
                 help="Save the X-ray, initial and final DRRs and an overlay as PNGs"),
    click.option("--verbose", type=click.IntRange(0, 3), default=1, show_default=True,
                 help="0 silent, 1 progress bars, 2 a line per stage, 3 a line per iteration"),
)
XRAY_ARG = click.argument("xray", nargs=-1, required=True, type=click.Path(exists=True))


def common(func):
    """The option groups every `register` subcommand shares."""
    func = section("Logging options", *LOGGING)(func)
    func = section("Optimizer options", *OPTIMIZER)(func)
    func = section("Preprocessing options", *PREPROCESSING)(func)
    func = section("Intrinsics options", *INTRINSICS)(func)
    func = section("Renderer options", *RENDERER)(func)
    return func


def _run(initializer, kw):
    from ..register.engine import Preprocessing
    from ..register.pipeline import VolumeSpec, register_files

    options = RegistrationOptions(
        scales=kw["scales"], n_itrs=kw["n_itrs"], optimizer=kw["optimizer"],
        slab_mm=kw["slab_mm"], multistart=kw["multistart"], multistart_rot=kw["multistart_rot"],
        multistart_xyz=kw["multistart_xyz"], parameterization=kw["parameterization"],
        convention=kw["convention"], lr_rot=kw["lr_rot"], lr_xyz=kw["lr_xyz"],
        patience=kw["patience"], threshold=kw["threshold"], max_n_plateaus=kw["max_n_plateaus"],
        equalize=kw["equalize"], crop=kw["crop"], patch_size=kw["patch_size"],
        sigma=kw["sigma"], beta=kw["beta"],
        drr_every=0,
    )
    reducefn = kw["reducefn"]
    if reducefn not in ("max", "sum"):
        reducefn = int(reducefn) if reducefn.lstrip("-").isdigit() else reducefn
    spec = VolumeSpec(kw["volume"], kw["mask"], kw["labels"], kw["orientation"], kw["renderer"],
                      kw["reverse_x_axis"], kw["voxel_shift"], kw["device"])
    events = register_files(
        kw["xray"], spec, initializer, kw["outpath"], options,
        Preprocessing(kw["subtract_background"], kw["linearize"], reducefn),
        {k: kw[k] for k in ("sdd", "delx", "dely", "x0", "y0")},
        kw["pattern"], kw["init_only"], kw["saveimg"],
    )
    run_with_progress(events, kw["verbose"])


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
    click.option("--rot", type=str, required=True,
                 help="Rotation, comma-separated (degrees for euler_angles), e.g. 0,0,0"),
    click.option("--xyz", type=str, required=True,
                 help="Translation in mm, comma-separated, e.g. 0,850,0"),
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
    click.option("-r", "--previous", type=click.Path(exists=True), required=True,
                 help="A previous result: its folder, its result.json, or the OUTDIR holding "
                 "<stem>/result.json for each X-ray"),
)
@common
def restart(**kw):
    """Initialize from a previous registration result."""
    from ..register.initializers import RestartInitializer

    _run(RestartInitializer(kw["previous"]), kw)


COMMANDS = [register]
