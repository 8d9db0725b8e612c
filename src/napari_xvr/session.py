"""A registration session in one human-readable file: what was open, the pose and its history,
the widgets' options and the last result, so that work can be closed and taken up again.

``name.xvr-session.json``::

    {"format": "napari-xvr session", "version": 1,
     "layers": [{"name": "ct", "role": "volume", "path": "ct.nii.gz"}, ...],
     "pose": [[...4x4...]], "history": {"index": 2, "entries": [...]},
     "options": {"drr": {"orientation": "AP", ...}, "register": {...}},
     "result": "results/x"}

Paths inside the session's folder are written relative to it (the folder can be moved), others
absolute. Plain Python: the napari widgets save and restore through it; the reader opens it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import XvrInputError, XvrOutputError
from .io.atomic import atomic_write_text
from .io.jsonfile import read_json

FORMAT = "napari-xvr session"
VERSION = 1
SUFFIX = ".xvr-session.json"
ROLES = ("volume", "labels", "xray", "result")


@dataclass
class Session:
    layers: list[dict] = field(default_factory=list)  # {"name", "role", "path"}
    pose: list | None = None  # 4x4
    history: dict | None = None  # PoseHistory.to_json()
    options: dict = field(default_factory=dict)  # widget kind -> {control: value}
    result: str | None = None  # the last result's folder

    def to_json(self, folder: Path) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "layers": [{**layer, "path": _portable(layer["path"], folder)} for layer in self.layers],
            "pose": self.pose,
            "history": self.history,
            "options": self.options,
            "result": None if self.result is None else _portable(self.result, folder),
        }


def _portable(path, folder: Path) -> str:
    path = Path(path).resolve()
    try:
        return path.relative_to(folder.resolve()).as_posix()
    except ValueError:
        return str(path)


def looks_like_session(path) -> bool:
    """Whether `path` is (claims to be) a session file, from its name or first bytes."""
    path = Path(path)
    if path.name.lower().endswith(SUFFIX):
        return True
    try:
        with path.open("rb") as handle:
            return f'"{FORMAT}"'.encode() in handle.read(4096)
    except OSError:
        return False


def write_session(path, session: Session, overwrite: bool = False) -> Path:
    """Write `session` to `path` (``.xvr-session.json`` added when missing) atomically; an
    existing file is kept unless `overwrite`."""
    path = Path(path).expanduser()
    if not path.name.lower().endswith(SUFFIX):
        path = path.with_name(path.name.removesuffix(".json") + SUFFIX)
    if path.exists() and not overwrite:
        raise XvrOutputError(f"{path} exists; choose another name or allow replacing it")
    missing = [layer["name"] for layer in session.layers if not layer.get("path")]
    if missing:
        raise XvrInputError(
            f"layers {', '.join(missing)} have no file: save them first (a session keeps paths, not images)"
        )
    if session.pose is not None and not np.isfinite(np.asarray(session.pose, float)).all():
        raise XvrInputError("the pose has NaN or infinite entries; nothing was written")
    text = json.dumps(session.to_json(path.parent), indent=1, default=_plain) + "\n"
    return atomic_write_text(path, text)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def read_session(path) -> Session:
    """The session in `path`, its paths made absolute; an error names what is wrong."""
    path = Path(path).expanduser()
    data = read_json(path, "session")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise XvrInputError(f'{path}: not a napari-xvr session (no "format": "{FORMAT}")')
    if int(data.get("version", 0)) > VERSION:
        raise XvrInputError(
            f"{path}: session version {data['version']} is newer than this "
            f"napari-xvr reads ({VERSION}); update napari-xvr"
        )
    folder = path.parent
    layers = []
    for layer in data.get("layers") or []:
        if not isinstance(layer, dict) or not {"name", "role", "path"} <= set(layer):
            raise XvrInputError(f"{path}: a layer entry needs name, role and path ({layer})")
        if layer["role"] not in ROLES:
            raise XvrInputError(
                f"{path}: layer {layer['name']!r} has role {layer['role']!r}; use one of {', '.join(ROLES)}"
            )
        layers.append({**layer, "path": str((folder / layer["path"]).resolve())})
    gone = [f"{layer['name']} ({layer['path']})" for layer in layers if not Path(layer["path"]).exists()]
    if gone:
        raise XvrInputError(
            f"{path}: the session's files are gone: {'; '.join(gone)}; move them "
            "back or edit the paths in the session file"
        )
    pose = data.get("pose")
    if pose is not None and np.asarray(pose, dtype=float).shape != (4, 4):
        raise XvrInputError(f'{path}: "pose" must be a 4x4 matrix')
    result = data.get("result")
    return Session(
        layers,
        pose,
        data.get("history"),
        dict(data.get("options") or {}),
        None if result is None else str((folder / result).resolve()),
    )
