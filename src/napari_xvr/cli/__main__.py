"""`python -m napari_xvr.cli` runs the `xvr` command."""

from .main import main

main()
