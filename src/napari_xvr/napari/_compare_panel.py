"""How the Register widget shows the X-ray against its DRR: one control for the comparison.

overlay (green/magenta blend), checkerboard (adjustable tiles), difference (signed, diverging
colours), edges (the DRR's edges in red over the X-ray) and flicker (the DRR shown and hidden
twice a second). The images come from :func:`napari_xvr.compare.compare`.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox, Container, SpinBox
from qtpy.QtCore import QTimer
from scipy import ndimage

from ..compare import MODES, compare
from ..geometry import grid_placement
from ._layer_helpers import upsert_image
from ._layers import KIND
from ._workers import report_error

FLICKER_MS = 500


class ComparePanel(Container):
    """Shows the chosen comparison of what ``source()`` gives: None (nothing registered yet)
    or (the X-ray's pixels under the overlay, the overlay layer, its name)."""

    def __init__(self, viewer, source):
        super().__init__(layout="horizontal", labels=True)
        self.viewer, self._source = viewer, source
        self.mode = ComboBox(
            label="compare",
            choices=list(MODES),
            value="overlay",
            tooltip="how the DRR is shown against the X-ray: blended, in "
            "alternating tiles, as the signed residual, as edges, or flickering",
        )
        self.tiles = SpinBox(
            label="tiles", value=8, min=2, max=64, tooltip="checkerboard tiles along the longer side"
        )
        self.extend([self.mode, self.tiles])
        self._timer = QTimer(self.native)
        self._timer.setInterval(FLICKER_MS)
        self._timer.timeout.connect(self._flick)
        self.mode.changed.connect(lambda *_: self.refresh())
        self.tiles.changed.connect(lambda *_: self.refresh())

    def clear(self) -> None:
        """No comparison shown (the overlay as it is): a new run is starting."""
        self._timer.stop()
        for layer in list(self.viewer.layers):
            if layer.metadata.get(KIND) == "comparison":
                self.viewer.layers.remove(layer)
        source = self._source()
        if source is not None:
            source[1].visible = True

    def refresh(self) -> None:
        """Show the chosen comparison of the current X-ray and overlay."""
        self.clear()
        source = self._source()
        if source is None:
            return
        image, overlay, name = source
        mode = self.mode.value
        overlay.visible = mode in ("overlay", "flicker")
        if mode == "flicker":
            self._timer.start()
            return
        try:
            drr = np.asarray(overlay.data, dtype=np.float64)
            image = np.asarray(image, dtype=np.float64)
            if drr.shape != image.shape:  # a coarse overlay: on the X-ray's grid
                drr = ndimage.zoom(drr, np.divide(image.shape, drr.shape), order=1)
            shown = compare(image, drr, mode, self.tiles.value)
        except Exception as err:
            report_error(err, "Compare")
            overlay.visible = True
            return
        if shown is None:
            return
        scale, offset = grid_placement(overlay.data.shape, overlay.scale, image.shape)
        translate = np.add(overlay.translate, offset)
        kwargs = {
            "scale": tuple(scale),
            "translate": tuple(translate),
            "metadata": {KIND: "comparison", "mode": mode},
        }
        if mode == "difference":
            limit = float(np.percentile(np.abs(shown), 99.5)) or 1.0
            kwargs.update(colormap="PiYG", contrast_limits=(-limit, limit))
        elif mode == "edges":
            kwargs.update(colormap="red", blending="additive", contrast_limits=(0, 1))
        else:
            kwargs.update(colormap="gray", contrast_limits=(0, 1))
        upsert_image(self.viewer, f"{name} ({mode})", shown, **kwargs)

    def _flick(self) -> None:
        source = self._source()
        if source is None or self.mode.value != "flicker":
            self._timer.stop()
            return
        source[1].visible = not source[1].visible
