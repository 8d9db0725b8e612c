"""`xvr train` and `xvr restart` (filled in by the training work)."""

import click

from ..errors import XvrInputError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.command(context_settings=CONTEXT)
def train():
    """Train a pose regression model."""
    raise XvrInputError("xvr train is not available yet (see the training issue)")


@click.command(context_settings=CONTEXT)
def restart():
    """Restart model training from a checkpoint."""
    raise XvrInputError("xvr restart is not available yet (see the training issue)")


COMMANDS = [train, restart]
