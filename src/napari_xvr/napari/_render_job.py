"""The DRR and pose widget's job: one DRR rendered in a worker, the renderer reused."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .. import defaults
from . import api
from ._jobs import LayerSnapshot, guarded

FAST = "fast"  # napari_xvr.fastdrr, one of napari_xvr.render.RENDERERS
PREVIEW_SCALE = 0.25  # detector pixels per side of a preview (while a control is dragged)
PREVIEW_MIN_PX = 16  # smaller detectors are rendered in full even while dragging


@dataclass(frozen=True)
class RenderRequest:
    """One DRR to render for the DRR and pose widget."""

    serial: int
    volume: LayerSnapshot
    labels: LayerSnapshot | None
    label_ids: str
    orientation: str
    intrinsics: object  # Intrinsics of the full detector
    matrix: np.ndarray  # 4x4 pose
    outline: bool = True
    reverse_x_axis: bool = defaults.reg("reverse_x_axis")
    preview: bool = False
    renderer: str = FAST

    @property
    def rendered_intrinsics(self):
        """The detector rendered: the full one, or a coarser one of the same extent (preview)."""
        intr = self.intrinsics
        if self.preview and min(intr.height, intr.width) * PREVIEW_SCALE >= PREVIEW_MIN_PX:
            return intr.rescaled(PREVIEW_SCALE)
        return intr


@dataclass(frozen=True)
class Rendered:
    serial: int
    drr: np.ndarray  # float32 (H, W)
    outline: object  # CarmOutline or None
    intrinsics: object  # of `drr` (coarser than `detector` for a preview)
    detector: object  # the full detector's intrinsics
    matrix: np.ndarray  # the pose rendered
    preview: bool
    reverse_x_axis: bool
    seconds: float  # render time (the renderer's construction excluded)


@guarded
def render_requests(request: RenderRequest, cache: dict):
    """Render one request, reusing the DRR module in `cache` when the inputs are unchanged."""
    from ..render import set_intrinsics

    intr = request.rendered_intrinsics
    assert request.volume.world_affine is not None  # a volume layer always has its affine
    key = (
        id(request.volume.data),
        request.volume.world_affine.tobytes(),
        None if request.labels is None else id(request.labels.data),
        request.label_ids,
        request.orientation,
        request.reverse_x_axis,
        request.renderer,
    )
    drr = cache.get(key)
    if drr is None:
        cache.clear()
        drr = api.make_renderer(
            request.volume,
            intr,
            request.labels,
            request.label_ids or None,
            request.orientation,
            renderer=request.renderer,
            reverse_x_axis=request.reverse_x_axis,
        )
        cache[key] = drr
    start = time.perf_counter()
    set_intrinsics(drr, intr)
    image = api.render_drr(request.volume, request.matrix, intr, drr=drr)
    seconds = time.perf_counter() - start
    outline = api.carm_outline(drr, request.matrix) if request.outline else None
    yield Rendered(
        request.serial,
        image,
        outline,
        intr,
        request.intrinsics,
        request.matrix,
        intr is not request.intrinsics,
        request.reverse_x_axis,
        seconds,
    )
