"""Atomic writes: a file or folder appears whole or not at all."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import XvrInputError, XvrOutputError

# the errors a full, read-only or forbidden output location gives
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})


def _check_parent(path: Path) -> None:
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise XvrInputError(f"{parent} is a file, not a folder; choose another output path")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(parent, err) from err


def output_error(path: Path, err: OSError, atomic: bool = True) -> XvrOutputError:
    """The user's message for an OSError while writing `path` (the system's reason, the fix)."""
    reason = err.strerror or type(err).__name__
    tail = "; nothing half-written was left behind" if atomic else ""
    return XvrOutputError(
        f"could not write {path}: {reason}. Free some disk space or choose another output folder{tail}"
    )


def _final_name(filename: str | None, tmp: Path, path: Path) -> Path:
    """The path a user asked for, for a file that failed inside the temporary folder."""
    try:
        return path / Path(filename or "").relative_to(tmp)
    except (TypeError, ValueError):
        return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_beside(path: Path, data: bytes) -> str:
    """A temporary file in `path`'s folder holding `data` (synced, permissions from the umask)."""
    _check_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise output_error(path, err) from err
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise output_error(path, err) from err
        raise
    return tmp


def atomic_write_files(files: dict) -> None:
    """Write each path -> bytes of `files` through a temporary beside it, then rename them
    all: every file is written whole, or none is (a failure leaves no temporary behind)."""
    temps: dict[Path, str] = {}
    try:
        for path, data in files.items():
            temps[Path(path)] = _temp_beside(Path(path), data)
        for path, tmp in temps.items():
            try:
                os.replace(tmp, path)
            except OSError as err:
                raise output_error(path, err) from err
    finally:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and os.replace."""
    path = Path(path)
    atomic_write_files({path: data})
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` in one rename.

    On an exception (or Ctrl-C) the temporary folder is removed and `path` is left as it was.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise XvrInputError(f"{path} is a file; the output must be a folder (remove it or pick -o)")
    _check_parent(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and err.errno in _WRITE_ERRNOS:
            raise output_error(_final_name(err.filename, tmp, path), err) from err
        raise
