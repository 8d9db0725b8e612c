"""`xvr register model` (placeholder until the training work lands).

Attach the subcommand to :data:`napari_xvr.cli.register.register` here.
"""

COMMANDS = []
