"""Every control of every dock says what it does; options shared with the CLI say it in the
CLI's own words (one text, two places)."""

from __future__ import annotations

import pytest

from napari_xvr.napari._tooltips import cli_help, controls

pytestmark = pytest.mark.gui

DOCKS = ("DRR and pose", "Register", "Train", "Evaluate and animate", "Track a sequence", "Workflow")


def test_every_control_has_a_tooltip(make_napari_viewer):
    from napari_xvr.cli.register import dicom

    viewer = make_napari_viewer(show=False)
    widgets = {name: viewer.window.add_plugin_dock_widget("napari-xvr", name)[1] for name in DOCKS}
    for name, widget in widgets.items():
        missing = [attr for attr, control in controls(widget) if not (control.tooltip or "").strip()]
        assert not missing, f"{name}: no tooltip on {missing}"
    register = widgets["Register"]
    assert register.scales.tooltip == cli_help(dicom)["scales"]
    assert "(mm)" in register.lr_xyz.label or "mm" in register.lr_xyz.label
