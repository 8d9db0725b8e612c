"""The DRR and pose widget's job: one DRR rendered in a worker, the renderer reused."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import api
from ._jobs import LayerSnapshot, guarded


@dataclass(frozen=True)
class RenderRequest:
    """One DRR to render for the DRR and pose widget."""

    serial: int
    volume: LayerSnapshot
    labels: LayerSnapshot | None
    label_ids: str
    orientation: str
    intrinsics: object  # Intrinsics
    matrix: np.ndarray  # 4x4 pose
    outline: bool = True


@dataclass(frozen=True)
class Rendered:
    serial: int
    drr: np.ndarray  # float32 (H, W)
    outline: object  # CarmOutline or None
    intrinsics: object


@guarded
def render_requests(request: RenderRequest, cache: dict):
    """Render one request, reusing the DRR module in `cache` when the inputs are unchanged."""
    from ..render import set_intrinsics

    key = (id(request.volume.data), request.volume.world_affine.tobytes(),
           None if request.labels is None else id(request.labels.data), request.label_ids,
           request.orientation)
    drr = cache.get(key)
    if drr is None:
        cache.clear()
        drr = api.make_renderer(request.volume, request.intrinsics, request.labels,
                                request.label_ids or None, request.orientation)
        cache[key] = drr
    else:
        set_intrinsics(drr, request.intrinsics)
    image = api.render_drr(request.volume, request.matrix, request.intrinsics, drr=drr)
    outline = api.carm_outline(drr, request.matrix) if request.outline else None
    yield Rendered(request.serial, image, outline, request.intrinsics)
