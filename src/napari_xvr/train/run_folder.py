"""A training run's output folder: its checkpoints, stale temporary files, and the checks
before anything is written there."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from ..errors import XvrInputError, XvrOutputError

RUN_FILE = re.compile(r"^\d{4,}\.pth$")


def run_files_in(folder: Path) -> list[Path]:
    """The files of a training run in `folder`: numbered checkpoints and losses.csv."""
    if not folder.is_dir():
        return []
    found = sorted(p for p in folder.iterdir() if RUN_FILE.match(p.name))
    return found + ([folder / "losses.csv"] if (folder / "losses.csv").is_file() else [])


def remove_stale_temporaries(folder: Path) -> None:
    """Temporary files that a killed atomic write left behind (`.<name>.<random>.tmp`)."""
    for tmp in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if tmp.is_file():
                tmp.unlink()


def _one_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_folder(outpath: Path) -> None:
    """-o must be a folder, or a path whose nearest existing ancestor is a folder we may write in."""
    if outpath.exists() and not outpath.is_dir():
        raise XvrInputError(f"-o {outpath}: is a file; give a folder for checkpoints")
    where = _existing_ancestor(outpath)
    if not where.is_dir():
        raise XvrInputError(f"-o {outpath}: {where} is a file, not a folder; choose another -o")
    if not os.access(where, os.W_OK | os.X_OK):
        raise XvrOutputError(
            f"could not write {outpath}: no permission to write in {where}; choose another output folder"
        )


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
