"""Several X-ray views side by side: napari's grid mode, one cell per view.

Each view's layers (its X-ray, DRR overlay and orientation letters) are made adjacent in the
layer list, at its bottom, and the grid's stride is set to their count, so napari draws each
view in a cell of its own (cells in the views' order, row by row). napari draws every cell with
one camera and never moves a layer: the layers' data, scale, translate and metadata stay as
they are (what a reader, a writer or a registration sees). What the grid changed, napari's grid
settings and the layer order, is given back by :meth:`ViewGrid.give_back`.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from ._layer_helpers import _unwrap, extent_2d, fit_2d


@dataclass(frozen=True)
class CanvasState:
    """The grid settings and layer order found before the views were laid out."""

    enabled: bool
    stride: int
    shape: tuple[int, int]
    order: tuple[weakref.ref, ...]  # the layers, bottom first (a deleted one is not kept alive)

    def layers(self) -> list:
        """The layers of `order` that still exist."""
        return [layer for layer in (ref() for ref in self.order) if layer is not None]


ROW_GAIN = 1.2  # a row more only when it shows the views this much larger: side by side first


def grid_shape(n: int, size: tuple[float, float], canvas: tuple[float, float]) -> tuple[int, int]:
    """(rows, columns) that show `n` views of world size `size` (h, w) largest on a `canvas`
    of (h, w) px, side by side unless another row shows them `ROW_GAIN` times larger."""

    def zoom(rows: int) -> float:
        columns = math.ceil(n / rows)
        return min(canvas[0] / rows / max(size[0], 1e-6), canvas[1] / columns / max(size[1], 1e-6))

    rows = max(range(1, n + 1), key=lambda r: (round(zoom(r) / ROW_GAIN ** (r - 1), 6), -r))
    return rows, math.ceil(n / rows)


def _padded(groups: Sequence[Sequence], spare: list) -> list[list] | None:
    """The groups made as long as the longest with hidden `spare` layers (None: too few)."""
    stride = max(len(group) for group in groups)
    need = sum(stride - len(group) for group in groups)
    if need > len(spare):
        return None
    spare = list(spare)
    return [[*group, *(spare.pop(0) for _ in range(stride - len(group)))] for group in groups]


class ViewGrid:
    """Lays groups of layers out in napari's grid, one cell per group, and gives it back."""

    def __init__(self, viewer):
        self.viewer = _unwrap(viewer)  # the layers themselves: a plugin's proxies are new each time
        self.saved: CanvasState | None = None  # set while the grid is ours

    @property
    def active(self) -> bool:
        return self.saved is not None

    def show(self, groups: Sequence[Sequence], fit: bool = True) -> None:
        """Each group in its own cell, in order; `fit`: the grid shape and the camera chosen
        so that every group's first layer (its X-ray) fills its cell. Nothing is set that is
        already so (a live update calls it several times a second)."""
        layers, grid = self.viewer.layers, self.viewer.canvas.grid
        groups = [[_unwrap(layer) for layer in group] for group in groups]
        grouped = {id(layer) for group in groups for layer in group}
        padded = _padded(
            groups, [layer for layer in layers if id(layer) not in grouped and not layer.visible]
        )
        if padded is None:  # a view lost a layer and nothing can stand in: one canvas again
            self.give_back()
            return
        if self.saved is None:
            self.saved = CanvasState(
                grid.enabled, grid.stride, tuple(grid.shape), tuple(weakref.ref(layer) for layer in layers)
            )
        placed = {id(layer) for group in padded for layer in group}
        order = [
            *(layer for group in padded for layer in group),
            *(layer for layer in layers if id(layer) not in placed),
        ]
        settings = (len(padded[0]), self._shape(groups, fit), True)
        if settings != (grid.stride, tuple(grid.shape), grid.enabled) or [
            layers.index(layer) for layer in order
        ] != list(range(len(layers))):
            with layers.batched_update():  # one scene-graph update for it all
                self._reorder(order)
                grid.stride, grid.shape, grid.enabled = settings
        if fit:
            fit_2d(self.viewer, *(group[0] for group in groups))

    def _shape(self, groups: Sequence[Sequence], fit: bool) -> tuple[int, int]:
        """The grid's (rows, columns): chosen anew when fitting or too few cells, else kept."""
        rows, columns = self.viewer.canvas.grid.shape
        if not fit and rows > 0 and columns > 0 and rows * columns >= len(groups):
            return rows, columns
        (r0, c0), (r1, c1) = extent_2d(*(group[0] for group in groups))
        return grid_shape(len(groups), (r1 - r0, c1 - c0), self.viewer.canvas.size)

    def give_back(self) -> None:
        """The grid settings and layer order as they were (layers added since: on top)."""
        if self.saved is None:
            return
        saved, self.saved = self.saved, None
        layers, grid = self.viewer.layers, self.viewer.canvas.grid
        here = {id(layer) for layer in layers}
        known = [layer for layer in saved.layers() if id(layer) in here]
        ids = {id(layer) for layer in known}
        order = [*known, *(layer for layer in layers if id(layer) not in ids)]
        with layers.batched_update():
            self._reorder(order)
            grid.enabled, grid.stride, grid.shape = saved.enabled, saved.stride, saved.shape

    def _reorder(self, order: list) -> None:
        """The layer list in `order` (every layer once), one move per layer out of place
        (napari's move_multiple mis-plans some permutations)."""
        layers = self.viewer.layers
        for target, layer in enumerate(order):
            source = layers.index(layer)
            if source != target:  # every layer before `target` is in place: source > target
                layers.move(source, target)
