"""`xvr register model`: initialise from a pose regression model, refine, write results."""

from __future__ import annotations

import click
from click.core import ParameterSource

from ._help import CONTEXT, UserPath, section
from .register import _run, register
from .register_input_args import REQUIRED, XRAY_ARG
from .register_run_args import common
from .upstream_args import UpstreamCompatibleCommand


@register.command(cls=UpstreamCompatibleCommand, context_settings=CONTEXT)
@XRAY_ARG
@section(
    "Required options",
    click.option(
        "-c",
        "--ckptpath",
        type=UserPath(exists=True),
        required=True,
        help="Checkpoint of a pretrained pose regressor (napari-xvr's or xvr's)",
    ),
    *REQUIRED,
)
@section(
    "Model options",
    click.option(
        "--warp",
        type=UserPath(exists=True),
        default=None,
        help="Rigid ITK transform (.tfm/.mat/.h5) mapping the CT to the model's template frame",
    ),
    click.option(
        "--invert/--no-invert", default=False, show_default=True, help="Whether to invert the warp or not"
    ),
    click.option(
        "--antipodal/--no-antipodal",
        default=False,
        show_default=True,
        help="Also try xvr's antipode of the predicted pose (ZXY angles a, b, c -> 180-a, "
        "-b, c) and start from the one whose DRR is more similar to the X-ray",
    ),
)
@common
def model(**kw):
    """Initialize from a pose regression model.

    The checkpoint's orientation and reverse_x_axis are used unless given on the command line.
    """
    from ..train.model_init import ModelInitializer

    ctx = click.get_current_context()
    explicit_flip = ctx.get_parameter_source("reverse_x_axis") == ParameterSource.COMMANDLINE
    init = ModelInitializer(
        kw["ckptpath"],
        kw["volume"],
        kw["warp"],
        kw["invert"],
        kw["antipodal"],
        reverse_x_axis=kw["reverse_x_axis"] if explicit_flip else None,
        crop=kw["crop"],
        subtract_background=kw["subtract_background"],
        linearize=kw["linearize"],
        device=kw["device"],
    )
    if init.mirrored:
        flag = "--reverse_x_axis" if init.reverse_x_axis else "--no-reverse_x_axis"
        click.echo(
            f"Warning: {flag} contradicts the checkpoint's reverse_x_axis="
            f"{bool(init.spec['reverse_x_axis'])}: the X-ray is mirrored for the model "
            "(omit the option to follow the checkpoint)",
            err=True,
        )
    _run(init, kw)  # the renderer's flip and orientation follow the checkpoint unless given


COMMANDS: list = []  # `model` is attached to the `register` group above
