"""The napari plugin: readers, writers, sample data, dock widgets and their workers.

This subpackage is the only place that imports napari, Qt or magicgui (``api`` and ``_jobs``
import neither and work without a viewer).
"""

from ._triton import guard_triton

guard_triton()  # before anything here imports torch._dynamo (see _triton)

from ._sample_data import sample_files, sample_xray_file  # noqa: E402
from .api import carm_outline, evaluate_layers, register_layers, render_drr, subject_from_layers  # noqa: E402

__all__ = [
    "carm_outline",
    "evaluate_layers",
    "register_layers",
    "render_drr",
    "sample_files",
    "sample_xray_file",
    "subject_from_layers",
]
