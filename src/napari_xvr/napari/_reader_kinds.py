"""Which paths the reader claims, and as what: volumes, X-rays, DICOM or result folders, results,
sessions and upstream xvr results, told apart by suffix and first bytes without reading anything heavy."""

from __future__ import annotations

import os
from pathlib import Path

from ..io.volume import VOLUME_SUFFIXES, file_suffix, is_dicom_file

XRAY_SUFFIXES = (".dcm", ".dicom")
UPSTREAM_SUFFIX = ".pth"
RESULT_SUFFIX = ".json"
#: folder entries looked at when deciding whether a folder holds DICOM files
MAX_SCAN = 4096


def _paths(path) -> list[str] | None:
    """`path` (str, os.PathLike or a list/tuple of them) as a list of str, else None."""
    items = list(path) if isinstance(path, (list, tuple)) else [path]
    if not items or not all(isinstance(p, (str, os.PathLike)) for p in items):
        return None
    try:
        out = [os.fspath(p) for p in items]
    except TypeError:
        return None
    return out if all(isinstance(p, str) and p for p in out) else None


def _dicom_files(folder: Path) -> list[Path]:
    """The DICOM files directly in `folder` (by their 'DICM' preamble), sorted by name."""
    found: list[Path] = []
    try:
        with os.scandir(folder) as entries:
            for index, entry in enumerate(entries):
                if index >= MAX_SCAN and not found:
                    break
                try:
                    if entry.is_file() and is_dicom_file(Path(entry.path), by_name=False):
                        found.append(Path(entry.path))
                except OSError:
                    continue
    except OSError:
        return []
    return sorted(found)


def _looks_like_result_json(path: Path) -> bool:
    """A ``.json`` that is (or claims to be) a napari-xvr result, from its name or first bytes."""
    if path.name.lower() == "result.json":
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return False
    return b'"napari_xvr_result"' in head or b'"init_pose"' in head


def _kind(path: Path) -> str | None:
    path = path.expanduser()
    try:
        path.stat()  # follows symlinks: missing targets and loops are not ours
    except (OSError, ValueError):
        return None
    if path.is_dir():
        if (path / "result.json").is_file() or _dicom_files(path):
            return "folder"
        return None
    if not path.is_file():
        return None
    suffix = file_suffix(path)
    if suffix in VOLUME_SUFFIXES:
        return "volume"
    if suffix in XRAY_SUFFIXES:
        return "xray"
    if suffix == UPSTREAM_SUFFIX:
        from ..io.upstream import looks_like_upstream_result

        return "upstream" if looks_like_upstream_result(path) else None
    if suffix == RESULT_SUFFIX:
        from ..session import looks_like_session

        if looks_like_session(path):
            return "session"
        return "result" if _looks_like_result_json(path) else None
    return None
