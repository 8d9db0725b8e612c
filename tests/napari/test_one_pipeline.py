"""The Register widget and `xvr register` are one pipeline: the same defaults, the same core
generator, the same result files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_xvr.cli.register import fixed
from napari_xvr.geometry import pose_from_dict, pose_to_zxy
from napari_xvr.napari._sample_data import sample_files, sample_xray_file
from napari_xvr.register import PoseInitializer, RegistrationOptions
from napari_xvr.register.volume_spec import VolumeSpec
from napari_xvr.register.workflows.pipeline import register_files

# widget control -> `xvr register` option of the same meaning
SHARED = {
    "crop": "crop",
    "subtract_background": "subtract_background",
    "linearize": "linearize",
    "equalize": "equalize",
    "reducefn": "reducefn",
    "scales": "scales",
    "optimizer": "optimizer",
    "n_itrs": "n_itrs",
    "multistart": "multistart",
    "parameterization": "parameterization",
    "lr_rot": "lr_rot",
    "lr_xyz": "lr_xyz",
    "patience": "patience",
    "threshold": "threshold",
    "max_n_plateaus": "max_n_plateaus",
    "renderer": "renderer",
    "reverse_x_axis": "reverse_x_axis",
    "device": "device",
    "orientation_choice": "orientation",
    "xray_mask": "xray_mask",
}


def _cli_defaults() -> dict:
    return {p.name: p.default for p in fixed.params}


def test_every_shared_control_starts_at_the_cli_default(make_napari_viewer):
    viewer = make_napari_viewer()
    _, reg = viewer.window.add_plugin_dock_widget("napari-xvr", "Register")
    cli = _cli_defaults()
    for control, option in SHARED.items():
        ours = getattr(reg, control).value
        want = cli[option]
        if want is None and option == "n_itrs":  # the CLI's None: the optimiser's own caps
            want = RegistrationOptions(optimizer=cli["optimizer"]).n_itrs
        if isinstance(ours, float):
            assert ours == pytest.approx(float(want)), control
        else:
            assert type(want)(ours) == want, f"{control}: widget {ours!r}, CLI {want!r}"


def test_widget_and_cli_write_the_same_result(sample_viewer, qtbot, tmp_path):
    """Same X-ray, CT, start and options: the widget's result.json is the CLI pipeline's."""
    viewer = sample_viewer
    _, drr_widget = viewer.window.add_plugin_dock_widget("napari-xvr", "DRR and pose")
    _, reg = viewer.window.add_plugin_dock_widget("napari-xvr", "Register")
    xray = viewer.layers["chest X-ray (synthetic)"]
    rot, xyz = pose_to_zxy(pose_from_dict(xray.metadata["true_pose"]))
    drr_widget.set_pose(rot + (2.0, -1.5, 1.0), xyz + (4.0, -6.0, 3.0))
    start = drr_widget.pose_matrix()
    reg.scales.value, reg.n_itrs.value = "8,4", "15,10"
    reg.outdir.value = tmp_path / "widget"
    reg.run()
    qtbot.waitUntil(lambda: not reg.running, timeout=240_000)
    assert reg.result is not None
    ours = json.loads(next((tmp_path / "widget").glob("*/result.json")).read_text())

    ct, _ = sample_files()
    path, _ = sample_xray_file()
    options = RegistrationOptions(scales="8,4", n_itrs="15,10")
    events = register_files([path], VolumeSpec(ct), PoseInitializer(start), tmp_path / "cli", options)
    for _ in events:
        pass
    theirs = json.loads(next((tmp_path / "cli").glob("*/result.json")).read_text())

    assert ours["preprocessing"] == theirs["preprocessing"]
    widget_options = {k: v for k, v in ours["options"].items() if k != "drr_every"}
    assert widget_options == {k: v for k, v in theirs["options"].items() if k != "drr_every"}
    for key in ("orientation", "renderer", "reverse_x_axis", "voxel_shift", "labels", "device"):
        assert ours["inputs"][key] == theirs["inputs"][key], key
    assert ours["initialization"] == theirs["initialization"] == {"type": "pose"}
    np.testing.assert_allclose(ours["init_pose"]["matrix"], theirs["init_pose"]["matrix"], atol=1e-5)
    # one code path on one CT: the same optimum (the layer holds the file's voxels)
    np.testing.assert_allclose(ours["final_pose"]["matrix"], theirs["final_pose"]["matrix"], atol=1e-3)
