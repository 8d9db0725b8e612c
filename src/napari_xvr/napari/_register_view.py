"""The Register widget's registration view: the X-ray (and a joint run's other views) alone in the
2D canvas, fitted, with its orientation letters; the layout given back when it is unticked."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from ._layer_helpers import fit_2d
from ._layers import KIND
from ._letters import letters_for, mirror_view, show_letters
from ._workers import report_error

FLAT = ("xray", "overlay", "drr", "replay")  # layers in detector mm, even with frames


class RegistrationView:
    """The registration view of :class:`._register_widget.RegisterWidget` (a mixin)."""

    def _guard_view(self, show: Callable[[], None]) -> None:
        """The view is a nicety: its errors are reported, never let into a run."""
        try:
            show()
        except Exception as err:
            report_error(err, "Register (view)")

    def focus_xray(self, fit: bool = True) -> None:
        """The registration view: the X-ray, its overlay and orientation labels alone in the 2D
        canvas (fitted to it); a joint run: every view so, side by side in napari's grid. The
        layers it hides get their visibility back, and the grid and layer order theirs, when
        "registration view" is unticked."""
        xray = self.xray_layer if self._job else self.xray.value
        if xray is None or self.viewer.dims.ndisplay != 2:
            return
        views = self.view_layers if self._job else []
        joint = self.view.value and bool(views)
        if not joint:
            self._grid.give_back()  # a single view: one canvas, the user's grid and layer order
        if self.view.value:
            self._hidden.hide_all_but(
                [layer.name for cell in self._view_groups() for layer in cell]
                if joint
                else [xray.name, f"{xray.name} DRR overlay", f"{xray.name} orientation"]
            )
        if joint:
            self._show_views()
        xray.visible = True
        if self.view.value:
            for layer in self._view_layers_shown():
                layer.visible = True
        for layer in (xray, *views):  # single view: the others shown when the user picks them
            if layer.colormap.name == "gray":  # green X-ray + magenta DRR: aligned parts turn grey
                layer.colormap = "green"
        if joint:
            self._grid.show(self._view_groups(), fit=fit)
        elif fit:
            fit_2d(self.viewer, xray)

    def _show_views(self) -> None:
        """Every view's layers shown (those that were hidden: hidden again at the untick)."""
        for cell in self._view_groups():
            self._hidden.show(cell)

    def _view_groups(self) -> list[list]:
        """Each view's X-ray, DRR overlay and orientation layers (those in the viewer), the
        registered X-ray's first."""
        groups = []
        for xray in (self.xray_layer, *self.view_layers):
            if xray is not None:
                names = (xray.name, f"{xray.name} DRR overlay", f"{xray.name} orientation")
                groups.append([self.viewer.layers[n] for n in names if n in self.viewer.layers])
        return groups

    def _view_layers_shown(self) -> list:
        """The registered X-ray's own layers: it, its DRR overlay and its letters."""
        xray = self.xray_layer if self._job else None
        if xray is None:
            return []
        names = (xray.name, f"{xray.name} DRR overlay", f"{xray.name} orientation")
        return [self.viewer.layers[n] for n in names if n in self.viewer.layers]

    def _keep_layout(self) -> None:
        """A joint view's layers still in their cells (a layer made again lands on top)."""
        if self._grid.active and self.view.value and self.viewer.canvas.grid.enabled:
            self._guard_view(partial(self._grid.show, self._view_groups(), fit=False))

    def _view_changed(self, on: bool) -> None:
        if on:
            self._guard_view(self.focus_xray)
            return
        self._guard_view(self._grid.give_back)
        self._apply_display()  # as stored, outside the registration view
        self._hidden.give_back()
        # the overlay and letters are in detector mm: over a CT slice (one is shown again) they
        # are a pink wash; with only 2D layers shown they stay as the user had them
        xray = self.xray_layer if self._job else None
        if any(
            layer.visible and layer.ndim == 3 and layer.metadata.get(KIND) not in FLAT
            for layer in self.viewer.layers
        ):
            for layer in self._view_layers_shown():
                if xray is not None and layer.name != xray.name:  # (proxies: compare names)
                    layer.visible = False

    def _apply_display(self, letters: dict | None = None) -> None:
        """The 2D view mirrored left-right when 'radiological display' is on and the registered
        X-ray is a frontal view with the patient's left on its left (core
        :func:`~napari_xvr.orientation.radiological_mirror`); as stored otherwise."""
        letters = self._letters if letters is None else letters
        mirror_view(self.viewer, letters, self.radiological.value and self.view.value)

    def _show_orientation(self, matrix) -> None:
        """Patient-direction letters at the X-ray's edges for the DRR at pose `matrix` (None:
        the layer without letters yet, made at the click); a joint run: at every view's."""
        xray = self.xray_layer
        if xray is None:
            return
        count = len(self.viewer.layers)
        self._show_letters(xray, matrix)
        if self.view_layers:
            self._guard_view(partial(self._show_view_letters, matrix))
        if len(self.viewer.layers) > count:  # a new layer became the active one: the X-ray again
            self.viewer.layers.selection.active = xray

    def _show_view_letters(self, matrix) -> None:
        """The other views' letters, each for its own pose (``pose @ relative``)."""
        names = [v.name for v in self._job.views]
        for name, relative in zip(names, self._relatives[1:] or [None] * len(names), strict=True):
            if name in self.viewer.layers:
                pose = (
                    None if matrix is None or relative is None else np.asarray(matrix) @ np.asarray(relative)
                )
                self._show_letters(self.viewer.layers[name], pose)

    def _show_letters(self, xray, matrix) -> None:
        """The letters layer ``<xray> orientation`` for pose `matrix` (None: blank)."""
        spec = self._job.spec
        letters = letters_for(xray, matrix, spec.orientation, spec.reverse_x_axis)
        registered = self.xray_layer
        # (compare names: a plugin's viewer is a proxy, whose every lookup is a new object)
        if registered is not None and xray.name == registered.name and any(letters.values()):
            self._letters = letters
            self._apply_display(letters)
        show_letters(self.viewer, xray, letters)
