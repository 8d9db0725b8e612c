"""`xvr register model`: initialise from a pose regression model, refine, write results."""

from __future__ import annotations

import click
from click.core import ParameterSource

from ._help import CONTEXT, SectionedCommand, section
from .register import REQUIRED, XRAY_ARG, _run, common, register


@register.command(cls=SectionedCommand, context_settings=CONTEXT)
@XRAY_ARG
@section(
    "Required options",
    click.option("-c", "--ckptpath", type=click.Path(exists=True), required=True,
                 help="Checkpoint of a pretrained pose regressor (napari-xvr's or xvr's)"),
    *REQUIRED,
)
@section(
    "Model options",
    click.option("--warp", type=click.Path(exists=True), default=None,
                 help="Rigid ITK transform (.tfm/.mat/.h5) mapping the CT to the model's template frame"),
    click.option("--invert", is_flag=True, help="Whether to invert the warp or not"),
    click.option("--antipodal", is_flag=True,
                 help="Also try the C-arm turned 180 degrees and start from the more similar pose"),
)
@common
def model(**kw):
    """Initialize from a pose regression model."""
    from ..train.model_init import ModelInitializer

    ctx = click.get_current_context()
    init = ModelInitializer(
        kw["ckptpath"], kw["volume"], kw["warp"], kw["invert"], kw["antipodal"],
        reverse_x_axis=kw["reverse_x_axis"], crop=kw["crop"],
        subtract_background=kw["subtract_background"], linearize=kw["linearize"], device=kw["device"],
    )
    if ctx.get_parameter_source("orientation") != ParameterSource.COMMANDLINE:
        kw["orientation"] = init.orientation  # the checkpoint knows how its CTs were oriented
    elif kw["orientation"] != init.orientation:
        click.echo(f"Note: --orientation {kw['orientation']} differs from the checkpoint's "
                   f"{init.orientation}", err=True)
    _run(init, kw)


COMMANDS = []  # `model` is attached to the `register` group above
