"""`xvr register`'s option groups for how it runs and what it writes: optimizer, logging and
multi-view; :func:`common` puts every shared group on a subcommand."""

from __future__ import annotations

import click

from ..conventions import CONVENTIONS, PARAMETERIZATIONS
from ..register.options import DEFAULT_ITRS, METRICS, OPTIMIZERS, RegistrationOptions
from ._help import FINITE, STARTS, section
from .register_input_args import INTRINSICS, PREPROCESSING, RENDERER, D, _differs

_D = RegistrationOptions()


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
        help="Gaussian blur (px) before the gradient NCC at the coarser scales: a sharper "
        "gradient term locates edges, hence depth, more precisely" + _differs("sigma"),
    ),
    click.option(
        "--fine_sigma",
        type=FINITE,
        default=D["fine_sigma"].ours,
        show_default=True,
        help="The gradient NCC's blur (px) at full resolution (scale 1): unblurred, the edges pin "
        "the depth along the ray (not in xvr: give --sigma's value for xvr's one blur)",
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


def common(func):
    """The option groups every `register` subcommand shares."""
    func = section("Logging options", *LOGGING)(func)
    func = section("Multi-view options", *MULTIVIEW)(func)
    func = section("Optimizer options", *OPTIMIZER)(func)
    func = section("Preprocessing options", *PREPROCESSING)(func)
    func = section("Intrinsics options", *INTRINSICS)(func)
    func = section("Renderer options", *RENDERER)(func)
    return func
