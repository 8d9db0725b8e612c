"""`xvr train` and `xvr restart`: thin commands over :mod:`napari_xvr.train`."""

from __future__ import annotations

import signal

import click

from ..errors import XvrInputError
from ..train.config import TrainConfig
from ..train.recipes import apply_recipe
from ._help import CONTEXT, SectionedCommand, UserPath, section
from .aliases import kebab_aliases
from .train_args import CHECKPOINT, DATA, LOGGING, MODEL, OPTIMIZER, RECIPE, RENDERER, REQUIRED, SAMPLING


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
@section("Recipe", RECIPE)
@section("Data options", *DATA)
@section("Sampling options", *SAMPLING)
@section("Renderer options", *RENDERER)
@section("Model options", *MODEL)
@section("Optimizer options", *OPTIMIZER)
@section("Checkpoint options", *CHECKPOINT)
@section("Logging options", *LOGGING)
def train(verbose: int, n_points: int | None, overwrite: bool, recipe: str | None, **kw) -> None:
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
    context = click.get_current_context()
    given = {k for k in kw if context.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
    config = apply_recipe(TrainConfig(**kw), recipe, keep=given)
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
