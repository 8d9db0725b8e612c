"""Dock widget: the registration workflow in one panel (load -> initialise -> register -> check
-> save), each step's state and a button that brings up the dock that does it, tabbed beside
this one so that the panel and one working dock fit a 1366 x 768 screen. The steps and their
rules are the core's (:mod:`napari_xvr.workflow`); this widget gathers the facts when they
change: a layer added or removed, or a plugin widget saying so (a pose, a start, a result: see
``_layer_helpers.state_changed``), never by polling."""

from __future__ import annotations

from pathlib import Path
from textwrap import shorten

from magicgui.widgets import Container, Label, PushButton
from qtpy.QtWidgets import QSizePolicy

import napari

from ..workflow import CURRENT, WARNING, WorkflowFacts, start_of, workflow_steps
from ._layer_helpers import PREDICATES, find_widget, on_state_change, remember

COLOURS = {CURRENT: "#ffd166", WARNING: "#ef476f"}


def workflow_facts(viewer) -> WorkflowFacts:
    """The session's state as the workflow reads it: layers, the DRR widget's pose history and
    the Register widget's last result."""
    drr, reg = find_widget("drr", viewer), find_widget("register", viewer)
    volume = next((layer.name for layer in viewer.layers if PREDICATES["volume"](layer)), None)
    xray = next((layer.name for layer in viewer.layers if PREDICATES["xray"](layer)), None)
    if drr is not None and drr.volume.value is not None:
        volume = drr.volume.value.name
    current = drr.history.current if drr is not None else None
    start = start_of(
        current.source if current is not None else None,
        reg.init.value if reg is not None else None,
        reg.init.choices[0] if reg is not None else None,
    )
    result = reg.result if reg is not None else None
    verdict = (result.verdict or {}) if result is not None else {}
    return WorkflowFacts(
        volume=volume,
        xray=xray,
        start=start,
        registered=result is not None,
        verdict=verdict.get("status"),
        verdict_detail=shorten("; ".join(verdict.get("reasons", [])), 160, placeholder=" ..."),
        saved=None if reg is None or reg.last_folder is None else _short(reg.last_folder),
    )


def _short(folder) -> str:
    """A result folder as its last two parts (the full path is in the Register widget)."""
    parts = Path(folder).parts
    return str(Path(*parts[-2:])) if len(parts) > 2 else str(folder)


class WorkflowWidget(Container):
    """Five steps, each a line of state and a button to its dock."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=False)
        self.viewer = viewer
        self.rows: dict[str, tuple[Label, PushButton]] = {}
        self.buttons: dict[str, PushButton] = {}
        for step in workflow_steps(WorkflowFacts()):
            label = Label(value=step.text)
            label.native.setWordWrap(True)  # grows to its lines (not squeezed to one)
            label.native.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.MinimumExpanding)
            button = PushButton(
                text=f"Open {step.dock}",
                tooltip=f"{step.title}: bring up the {step.dock} dock, tabbed beside this panel",
            )
            button.changed.connect(lambda *_, dock=step.dock: self.open_dock(dock))
            self.rows[step.key] = (label, button)
            self.buttons[step.key] = button
            self.append(Container(layout="vertical", labels=False, widgets=[label, button]))
        self.steps = workflow_steps(WorkflowFacts())
        on_state_change(viewer, self.refresh)
        for emitter in (viewer.layers.events.inserted, viewer.layers.events.removed):
            emitter.connect(self._layers_changed)
        self.native.destroyed.connect(self._disconnect)
        remember(self, "workflow")
        self.refresh()

    def _layers_changed(self, event=None) -> None:
        self.refresh()

    def _disconnect(self, *_) -> None:
        for emitter in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            emitter.disconnect(self._layers_changed)

    def refresh(self) -> None:
        """Show each step's state (only what changed is redrawn)."""
        try:
            steps = workflow_steps(workflow_facts(self.viewer))
            for step in steps:
                label, _ = self.rows[step.key]
                if label.value != step.text:
                    label.value = step.text
                    colour = COLOURS.get(step.state)
                    label.native.setStyleSheet(f"color: {colour};" if colour else "")
        except RuntimeError:  # a widget it reads, or this panel, was closed meanwhile
            return
        self.steps = steps

    def open_dock(self, name: str):
        """Bring up the plugin's dock `name`, tabbed with the others on the right."""
        _, widget = self.viewer.window.add_plugin_dock_widget("napari-xvr", name, tabify=True)
        self.refresh()
        return widget
