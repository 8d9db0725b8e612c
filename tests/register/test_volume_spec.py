"""VolumeSpec.describe and its inverse: a saved result rebuilds the renderer it was registered
with, one way for the animation, the track replay and napari's reader."""

import dataclasses
from pathlib import Path

import pytest

from napari_xvr.errors import XvrInputError
from napari_xvr.register.volume_spec import VolumeSpec


def test_describe_then_from_inputs_is_the_same_spec(tmp_path):
    spec = VolumeSpec(
        tmp_path / "ct.nii.gz",
        tmp_path / "labels.nii.gz",
        "1,2",
        "PA",
        "fast",
        True,
        0.0,
        None,
        density="diffdrr",
    )
    back = VolumeSpec.from_inputs(spec.describe())
    fields = [f.name for f in dataclasses.fields(VolumeSpec) if f.name not in ("device", "drr_kwargs")]
    for name in fields:
        mine, theirs = getattr(spec, name), getattr(back, name)
        if name == "labels":
            mine = [1, 2]
        if isinstance(mine, Path):
            mine, theirs = mine.resolve(), Path(theirs).resolve()
        assert mine == theirs, name


def test_an_older_result_and_a_bad_one():
    old = VolumeSpec.from_inputs({"volume": "ct.nii.gz"})
    assert (old.renderer, old.orientation, old.reverse_x_axis, old.voxel_shift, old.density) == (
        "trilinear",
        "AP",
        False,
        0.5,
        "diffdrr",
    )
    with pytest.raises(XvrInputError, match="inputs.renderer 'raytrace' is not one of"):
        VolumeSpec.from_inputs({"volume": "ct.nii.gz", "renderer": "raytrace"}, "x/result.json")
    with pytest.raises(XvrInputError, match="x/result.json: inputs.volume names no file"):
        VolumeSpec.from_inputs({"xray": "x.dcm"}, "x/result.json")
