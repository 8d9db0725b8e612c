"""What napari thread workers share: layer snapshots, failures as events, progress merging.

The jobs themselves (``_register_job``, ``_render_job``, ``_evaluate_job``, ``_train_job``) are
plain generators, no Qt and no layer access. The widgets snapshot what they need from layers on
the main thread (:class:`LayerSnapshot`), start a job in a ``napari.qt.threading`` worker and
update layers from the events it yields (float32 arrays, throttled). Failures are yielded as
:class:`Failed` so the widget can report them and stay usable.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

import numpy as np

from ..errors import XvrInputError
from . import api


class _Affine:
    def __init__(self, matrix):
        self.affine_matrix = np.asarray(matrix, dtype=np.float64)


@dataclass
class LayerSnapshot:
    """What a worker may know about a layer: its name, data, metadata and world affine."""

    name: str
    data: np.ndarray
    metadata: dict
    world_affine: np.ndarray | None = None

    @classmethod
    def of(cls, layer) -> LayerSnapshot | None:
        if layer is None:
            return None
        world = api._affine(layer, None) if layer.ndim == 3 else None
        return cls(layer.name, np.asarray(layer.data), dict(layer.metadata), world)

    # duck-typing used by napari_xvr.napari.api
    @property
    def affine(self):
        return _Affine(self.world_affine)

    scale = (1.0, 1.0, 1.0)
    translate = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Failed:
    message: str
    details: str = ""


def guarded(gen_func):
    """Turn exceptions of a job into a yielded :class:`Failed` event."""

    def run(*args, **kwargs):
        try:
            yield from gen_func(*args, **kwargs)
        except XvrInputError as err:
            yield Failed(str(err))
        except Exception as err:  # shown to the user, the widget stays usable
            yield Failed(f"{type(err).__name__}: {err}", traceback.format_exc())

    run.__name__ = gen_func.__name__
    run.__doc__ = gen_func.__doc__
    return run


def merge_progress(earlier, later):
    """Two queued progress events as one (``earlier.merged(later)``), or None when they are not
    both progress of the same kind: the GUI then handles them in order."""
    if type(earlier) is type(later) and hasattr(earlier, "merged"):
        return earlier.merged(later)
    return None


def f32(image):
    return None if image is None else np.ascontiguousarray(image, dtype=np.float32)
