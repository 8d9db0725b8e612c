"""Layers hidden or shown for a focused view (the registration view, the DRR widget's detector
view), each given back its own visibility when the view ends."""

from __future__ import annotations


class LayerVisibility:
    """Remembers the visibility of every layer it changes, to give it back."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.changed: dict[str, bool] = {}  # layer name -> its visibility before

    def hide_all_but(self, names) -> None:
        """Hide every layer not named (remembering that it was shown)."""
        keep = set(names)
        for layer in self.viewer.layers:
            if layer.name not in keep and layer.visible:
                self.changed.setdefault(layer.name, True)
                layer.visible = False

    def hide(self, layers) -> None:
        for layer in layers:
            if layer.visible:
                self.changed.setdefault(layer.name, True)
                layer.visible = False

    def show(self, layers) -> None:
        """Show `layers` (one that was hidden is hidden again by :meth:`give_back`)."""
        for layer in layers:
            if not layer.visible:
                self.changed.setdefault(layer.name, False)
                layer.visible = True

    def give_back(self) -> None:
        for name, visible in self.changed.items():
            if name in self.viewer.layers:
                self.viewer.layers[name].visible = visible
        self.changed.clear()
