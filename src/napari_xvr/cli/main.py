"""Top-level `xvr` group. Each command lives in its own module and is attached here."""

from __future__ import annotations

import signal
import sys

import click

from .. import __version__
from ..errors import XvrInputError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: atomic writes clean up, whole outputs only."""


def _terminate(signum, frame):
    raise Terminated()


class XvrGroup(click.Group):
    """A group that turns XvrInputError into a one-line message and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except XvrInputError as err:
            click.echo(f"Error: {err}", err=True)
            sys.exit(2)
        except KeyboardInterrupt as err:
            how = "Terminated" if isinstance(err, Terminated) else "Interrupted"
            click.echo(
                f"{how}; finished results are kept whole and nothing half-written was left behind.", err=True
            )
            sys.exit(143 if isinstance(err, Terminated) else 130)


@click.group(cls=XvrGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-v", "--version", prog_name="xvr")
def main():
    """A PyTorch package for 2D/3D XRAY to CT/MR registration (napari-xvr).

    Train patient-specific pose regression models from DRRs and register real X-rays with
    gradient-based multiscale optimisation on a differentiable renderer (DiffDRR).
    """
    signal.signal(signal.SIGTERM, _terminate)


def _attach() -> None:
    from . import animate, dcm2nii, demo, evaluate, export, register, register_model, track, train

    for module in (train, register, register_model, track, animate, dcm2nii, evaluate, export, demo):
        for command in module.COMMANDS:
            main.add_command(command)


_attach()
