"""Registration: similarity, initialisers, the engine generator and its results."""

from __future__ import annotations

import importlib

_WHERE = {  # name -> submodule: imported on first use, so `xvr --help` stays light
    "Preprocessing": ".engine",
    "StopToken": ".engine",
    "register": ".engine",
    "run_to_end": ".engine",
    "Done": ".events",
    "Stage": ".events",
    "Step": ".events",
    "DicomInitializer": ".initializers",
    "FixedInitializer": ".initializers",
    "PoseInitializer": ".initializers",
    "RestartInitializer": ".initializers",
    "RegistrationOptions": ".options",
    "RegistrationResult": ".result",
    "read_result": ".result",
    "result_pose": ".result",
    "write_result": ".result",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
