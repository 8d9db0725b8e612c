"""Registration: similarity, initialisers, the engine generator and its results."""

from __future__ import annotations

from .._lazy import lazy_exports

_WHERE = {  # name -> submodule: imported on first use, so `xvr --help` stays light
    "Preprocessing": ".engine",
    "StopToken": ".events",
    "register": ".engine",
    "run_to_end": ".engine",
    "Done": ".events",
    "MirrorCheck": ".checks.mirror",
    "SetupCheck": ".checks.setup_check",
    "Stage": ".events",
    "Step": ".events",
    "DicomInitializer": ".initializers",
    "FixedInitializer": ".initializers",
    "PoseInitializer": ".initializers",
    "RestartInitializer": ".initializers",
    "RegistrationOptions": ".options",
    "RegistrationResult": "..io.result",
    "read_result": "..io.result",
    "result_pose": "..io.result",
    "write_result": "..io.result",
}

__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
