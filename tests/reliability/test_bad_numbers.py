"""Every number that enters (options, DICOM header, result.json, checkpoint config) is checked
before any work: one line that names it, exit status 2, no output written, never a traceback."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pydicom
import pytest
import torch
from click.testing import CliRunner

from napari_xvr.cli import main
from napari_xvr.errors import XvrInputError

REFUSED = "Error"


def run(args) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def assert_refused(result, *words, out=None):
    text = result.output
    assert result.exit_code == 2, (result.exit_code, text, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in text and REFUSED in text, text
    for word in words:
        assert word in text, (word, text)
    if out is not None:
        assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


@pytest.fixture()
def case(synthetic_cases, example_volume, tmp_path):
    folder, _ = synthetic_cases
    return folder / "xray_000.dcm", example_volume[0], tmp_path / "out"


@pytest.mark.parametrize(
    "extra,words",
    [
        (["--x0", "nan"], ["--x0", "not a finite number"]),
        (["--sdd", "inf"], ["--sdd", "not a finite number"]),
        (["--beta", "nan"], ["--beta", "not a finite number"]),
        (["--beta", "2"], ["--beta 2.0", "[0, 1]"]),
        (["--sigma", "-1"], ["--sigma"]),
        (["--lr_rot", "-inf"], ["--lr_rot"]),
        (["--scales", "inf"], ["--scales"]),
        (["--scales", "0.01"], ["--scales", ">= 1"]),
        (["--scales", "64,8"], ["--scales 64,8", "at least 16 px"]),
        (["--scales", "8,4", "--n_itrs", "10,x"], ["--n_itrs"]),
        (["--patch_size", "1"], ["--patch_size"]),
        (["--crop", "-3"], ["--crop"]),
        (["--crop", "100000"], ["--crop 100000", "allows 0 to 126 pixels"]),
        (["--convention", "XYZW"], ["--convention"]),
        (["--metric", "ssim"], ["--metric"]),
        (["--reducefn", "median"], ["--reducefn"]),
    ],
)
def test_register_refuses_bad_options(case, extra, words):
    xray, ct, out = case
    assert_refused(
        run(["register", "dicom", xray, "-v", ct, "-o", out, "--verbose", 0, *extra]), *words, out=out
    )


@pytest.mark.parametrize(
    "rot,xyz,words",
    [
        ("nan,0,0", "0,850,0", ["--rot", "finite"]),
        ("0,0,0", "0,inf,0", ["--xyz", "finite"]),
        ("0,0", "0,850,0", ["--rot has 2 values"]),
        ("a,b,c", "0,850,0", ["--rot", "numbers"]),
    ],
)
def test_fixed_pose_numbers(case, rot, xyz, words):
    xray, ct, out = case
    assert_refused(
        run(["register", "fixed", xray, "-v", ct, "-o", out, "--rot", rot, "--xyz", xyz]), *words, out=out
    )


def _edited_dicom(src, dst, **tags):
    ds = pydicom.dcmread(src)
    for key, value in tags.items():
        if key == "pixels":
            ds.PixelData = value.astype(np.uint16).tobytes()
        else:
            setattr(ds, key, value)
    ds.save_as(dst)
    return dst


@pytest.mark.parametrize(
    "tags,words",
    [
        ({"DistanceSourceToPatient": "1e12"}, ["DistanceSourceToPatient", "between 0 and"]),
        ({"DistanceSourceToPatient": "2000"}, ["DistanceSourceToPatient", "between 0 and"]),
        ({"DistanceSourceToPatient": "-5"}, ["DistanceSourceToPatient"]),
        ({"PositionerPrimaryAngle": "4000"}, ["out of range"]),
        ({"pixels": np.zeros((128, 128))}, ["every pixel is 0", "blank"]),
        ({"pixels": np.full((128, 128), 77)}, ["every pixel is 77"]),
        (
            {
                "Modality": "CT",
                "ImageOrientationPatient": [1, 0, 0, 0, 1, 0],
                "ImagePositionPatient": [0, 0, 0],
            },
            ["not an X-ray projection", "-v"],
        ),
    ],
)
def test_bad_headers_and_images(case, tmp_path, tags, words):
    xray, ct, out = case
    bad = _edited_dicom(xray, tmp_path / "bad.dcm", **tags)
    assert_refused(run(["register", "dicom", bad, "-v", ct, "-o", out]), *words, out=out)


@pytest.fixture()
def previous(case):
    """A real result.json to edit (from --init_only)."""
    xray, ct, out = case
    done = run(["register", "dicom", xray, "-v", ct, "-o", out, "--init_only", "--verbose", 0])
    assert done.exit_code == 0, done.output
    return out / "xray_000" / "result.json"


@pytest.mark.parametrize(
    "edit,words",
    [
        (lambda d: [1, 2, 3], ["a JSON object with 'init_pose'"]),
        (lambda d: "a string", ["a JSON object"]),
        (lambda d: {**d, "init_pose": {"matrix": [[1, 0, 0], [0, 1]]}}, ["init_pose"]),
        (
            lambda d: {**d, "init_pose": {"matrix": np.diag([2.0, 2.0, 2.0, 1.0]).tolist()}},
            ["not a rotation"],
        ),
        (
            lambda d: {
                **d,
                "init_pose": {"matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 5, 1]]},
            },
            ["bottom row"],
        ),
        (lambda d: {**d, "init_pose": {"matrix": [[float("nan")] * 4] * 4}}, ["NaN"]),
        (
            lambda d: {**d, "intrinsics": {**d["intrinsics"], "height": 40000, "width": 40000}},
            ["height=40000"],
        ),
        (lambda d: {**d, "intrinsics": {**d["intrinsics"], "sdd": -3}}, ["sdd=-3"]),
        (lambda d: {**d, "intrinsics": {**d["intrinsics"], "height": "abc"}}, ["height='abc'"]),
        (lambda d: {**d, "inputs": [1]}, ["'inputs' must be an object"]),
        (lambda d: {**d, "inputs": {**d["inputs"], "volume": 5}}, ["inputs.volume is 5", "a file name"]),
        (lambda d: {**d, "inputs": {**d["inputs"], "orientation": "LR"}}, ["inputs.orientation", "AP or PA"]),
        (lambda d: {**d, "inputs": {**d["inputs"], "renderer": "raytrace"}}, ["inputs.renderer"]),
        (lambda d: {**d, "inputs": {**d["inputs"], "reverse_x_axis": "yes"}}, ["inputs.reverse_x_axis"]),
        (lambda d: {**d, "inputs": {**d["inputs"], "voxel_shift": 1e9}}, ["inputs.voxel_shift"]),
        (lambda d: {**d, "inputs": {**d["inputs"], "labels": "abc"}}, ["inputs.labels"]),
        (lambda d: {k: v for k, v in d.items() if k != "intrinsics"}, ["no 'intrinsics'"]),
    ],
)
def test_edited_result_files_are_refused(case, previous, edit, words, tmp_path):
    xray, ct, _ = case
    data = json.loads(previous.read_text())
    bad = tmp_path / "bad" / "result.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(edit(data)))
    out = tmp_path / "again"
    assert_refused(run(["register", "restart", xray, "-v", ct, "-o", out, "-r", bad]), *words, out=out)


def test_a_result_that_is_not_utf8(case, previous, tmp_path):
    xray, ct, _ = case
    bad = tmp_path / "bad" / "result.json"
    bad.parent.mkdir()
    bad.write_bytes(previous.read_bytes().replace(b"init_pose", b"init_\xff\xfeose", 1))
    out = tmp_path / "again"
    assert_refused(run(["register", "restart", xray, "-v", ct, "-o", out, "-r", bad]), "not UTF-8", out=out)


@pytest.mark.parametrize(
    "change,words",
    [
        ({"height": "abc"}, ["height='abc'", "not a number"]),
        ({"height": 0}, ["height=0", "outside"]),
        ({"height": 20000}, ["height=20000"]),
        ({"sdd": -1020.0}, ["sdd=-1020.0"]),
        ({"delx": float("nan")}, ["delx=nan"]),
        ({"parameterization": "quaternions"}, ["parameterization"]),
    ],
)
def test_checkpoints_with_a_bad_config(case, tmp_path, change, words):
    from napari_xvr.train.network import PoseRegressor

    xray, ct, out = case
    config = {
        "model_name": "test_resnet",
        "parameterization": "euler_angles",
        "convention": "ZXY",
        "norm_layer": "groupnorm1",
        "height": 32,
        "sdd": 1020.0,
        "delx": 12.8,
        "unit_conversion_factor": 1000.0,
        "orientation": "AP",
        "reverse_x_axis": False,
    }
    model = PoseRegressor("test_resnet", "euler_angles", "ZXY", False, 32, "groupnorm1", 1000.0)
    path = tmp_path / "bad.pth"
    torch.save({"model_state_dict": model.state_dict(), "config": {**config, **change}}, path)
    assert_refused(run(["register", "model", xray, "-c", path, "-v", ct, "-o", out]), *words, out=out)


@pytest.mark.parametrize(
    "extra,words",
    [
        (["--weight_ncc", "nan"], ["--weight_ncc"]),
        (["--lr", "inf"], ["--lr"]),
        (["--r1", "nan", "nan"], ["--r1"]),
        (["--sdd", "-5"], ["--sdd"]),
    ],
)
def test_train_refuses_bad_numbers_before_writing(example_volume, tmp_path, extra, words):
    out = tmp_path / "run"
    base = [
        "train",
        "-v",
        example_volume[0],
        "-o",
        out,
        "--sdd",
        1020,
        "--height",
        32,
        "--delx",
        12.8,
        *(w for k in ("r1", "r2", "r3", "tx", "ty", "tz") for w in (f"--{k}", -1, 1)),
    ]
    if extra[0] == "--sdd":
        base = base[:5] + base[7:]
    if extra[0] == "--r1":
        base = [
            w
            for i, w in enumerate(base)
            if not (w == "--r1" or (i > 0 and base[i - 1] == "--r1") or (i > 1 and base[i - 2] == "--r1"))
        ]
    result = run([*base, *extra])
    assert_refused(result, *words)
    assert not out.exists() or not any(out.iterdir())


def test_a_copy_of_the_sample_folder_is_untouched(synthetic_cases, tmp_path):
    """Sanity: the edits above worked on copies (the session's shared cases are intact)."""
    folder, truth = synthetic_cases
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert sorted(p.name for p in copy.glob("*.dcm")) == sorted(f"{n}.dcm" for n in truth["cases"])


@pytest.mark.parametrize(
    "kw,words",
    [
        ({"weight_ncc": float("nan")}, "--weight_ncc nan"),
        ({"r1": (float("nan"), 1.0)}, "--r1 nan 1"),
        ({"lr": float("inf")}, "--lr inf"),
    ],
)
def test_training_config_from_python_is_checked_too(kw, words):
    from napari_xvr.train.config import TrainConfig

    with pytest.raises(XvrInputError, match=words):
        TrainConfig(volpath="ct.nii.gz", outpath="run", **kw)


def test_unknown_norm_layer_and_a_short_warmup():
    from napari_xvr.train.loop import lr_factor
    from napari_xvr.train.network import PoseRegressor

    with pytest.raises(XvrInputError, match="--norm_layer 'groupnorm7' is not a timm norm layer"):
        PoseRegressor("test_resnet", "euler_angles", "ZXY", False, 32, "groupnorm7", 1000.0)
    # n_warmup_itrs < n_grad_accum_itrs: a warm-up of half a step never goes above --lr
    assert lr_factor(0, 0.5, 100) == 1.0 and lr_factor(0, 4, 100) == 0.25
