"""The `xvr` command line: thin commands that parse options, call the core, show progress."""

from .main import main

__all__ = ["main"]
