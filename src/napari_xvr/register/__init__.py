"""Registration: similarity, initialisers, the engine generator and its results."""

from .engine import Preprocessing, StopToken, register, run_to_end
from .events import Done, Stage, Step
from .initializers import DicomInitializer, FixedInitializer, PoseInitializer, RestartInitializer
from .options import RegistrationOptions
from .result import RegistrationResult, read_result, result_pose, write_result

__all__ = [
    "DicomInitializer",
    "Done",
    "FixedInitializer",
    "PoseInitializer",
    "Preprocessing",
    "RegistrationOptions",
    "RegistrationResult",
    "RestartInitializer",
    "Stage",
    "Step",
    "StopToken",
    "read_result",
    "register",
    "result_pose",
    "run_to_end",
    "write_result",
]
