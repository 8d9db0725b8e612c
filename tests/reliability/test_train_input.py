"""`xvr train` / `xvr restart` / finetuning (`xvr train -c`) refuse every bad input before any work:
one line naming the option or file, the value and the fix, exit status 2, and nothing written in
the output folder (no 0000.pth, no losses.csv). Real files; the CLI in a subprocess for a few."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from napari_xvr.errors import XvrInputError, XvrOutputError
from napari_xvr.train import TrainConfig, restart, run_training, train

sys.path.insert(0, str(Path(__file__).parent.parent / "train"))
from train_helpers import TINY, cli_args  # noqa: E402

XVR = [sys.executable, "-m", "napari_xvr.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())


@pytest.mark.parametrize(
    "kw,words",
    [
        ({"batch_size": 0}, "--batch_size 0"),
        ({"n_total_itrs": -3}, "--n_total_itrs -3"),
        ({"lr": 0.0}, "--lr 0"),
        ({"lr": 1e30}, "--lr 1e+30"),
        ({"height": 0}, "--height 0"),
        ({"height": 8}, "--height 8"),
        ({"height": 20000}, "--height 20000"),
        ({"r1": (10, 5)}, "--r1 10 5"),
        ({"r1": (-1e30, 1e30)}, "--r1"),
        ({"tx": (float("nan"), 3)}, "--tx nan 3"),
        ({"ty": (1e9, 2e9)}, "--ty"),
        ({"n_grad_accum_itrs": 0}, "--n_grad_accum_itrs 0"),
        ({"n_save_every_itrs": 0}, "--n_save_every_itrs 0"),
        ({"n_warmup_itrs": -1}, "--n_warmup_itrs -1"),
        ({"delx": 0.0}, "--delx 0"),
        ({"sdd": -1.0}, "--sdd -1"),
        ({"sdd": float("inf")}, "--sdd inf"),
        ({"unit_conversion_factor": 1e12}, "--unit_conversion_factor"),
        ({"voxel_shift": 1e9}, "--voxel_shift"),
        ({"n_samples": 1}, "--n_samples 1"),
        ({"n_samples": 10**9}, "--n_samples"),
        ({"num_workers": -1}, "--num_workers -1"),
        ({"n_drr_every_itrs": -1}, "--n_drr_every_itrs -1"),
        ({"seed": -1}, "--seed -1"),
        ({"seed": 10**20}, "--seed"),
        ({"parameterization": "euler_angles", "convention": "QQQ"}, "--convention 'QQQ'"),
        ({"parameterization": "euler_angles", "convention": "ZZX"}, "--convention 'ZZX'"),
        ({"weight_ncc": 0.0, "weight_geo": 0.0, "weight_dice": 0.0, "weight_haus": 0.0}, "all 0"),
        ({"geodesic_only": True, "weight_geo": 0.0}, "--geodesic_only"),
        ({"batch_size": "8"}, "--batch_size '8'"),
        ({"height": 32.5}, "--height 32.5"),
        ({"lr": None}, "--lr None"),
        ({"pretrained": "yes"}, "--pretrained 'yes'"),
    ],
)
def test_every_number_is_checked_in_python(kw, words):
    with pytest.raises(XvrInputError) as info:
        TrainConfig(volpath="ct.nii.gz", outpath="run", **{**TINY, **kw}).check_geometry()
    message = str(info.value)
    assert words in message and "\n" not in message


def test_a_whole_float_and_a_path_are_accepted():
    config = TrainConfig(volpath=Path("ct.nii.gz"), outpath=Path("run"), **{**TINY, "height": 32.0})
    assert config.height == 32 and isinstance(config.height, int) and config.volpath == "ct.nii.gz"


def test_a_damaged_stored_config_names_the_file():
    data = TrainConfig(volpath="ct.nii.gz", outpath="run", **TINY).to_dict()
    for key, value in (("n_total_itrs", "abc"), ("lr", None), ("r1", [1]), ("height", [32])):
        with pytest.raises(XvrInputError, match=rf"^ckpt\.pth: .*--{key}"):
            TrainConfig.from_dict({**data, key: value}, source="ckpt.pth")


# ------------------------------------------------------------------ inputs a run checks first
@pytest.fixture(scope="module")
def files(example_volume, tmp_path_factory):
    """Bad masks, volumes and transforms next to the good (ct, mask)."""
    import SimpleITK as sitk

    ct, mask = example_volume
    folder = tmp_path_factory.mktemp("bad_inputs")
    image = nib.load(str(mask))
    labels = np.asarray(image.dataobj)
    made = {"ct": ct, "mask": mask}

    def save(name, data, affine):
        nib.save(nib.Nifti1Image(data, affine), str(folder / name))
        made[name.split(".")[0]] = folder / name

    save("zero.nii.gz", np.zeros_like(labels), image.affine)
    save("small.nii.gz", labels[::2, ::2, ::2].copy(), image.affine @ np.diag([2, 2, 2, 1]))
    shifted = image.affine.copy()
    shifted[:3, 3] += 40
    save("shifted.nii.gz", labels, shifted)
    save("negative.nii.gz", labels.astype(np.int16) - 1024, image.affine)
    save("air.nii.gz", np.full(labels.shape, -1000, np.int16), image.affine)
    (folder / "garbage.tfm").write_text("hello")
    made["garbage"] = folder / "garbage.tfm"
    scale = sitk.AffineTransform(3)
    scale.Scale(2.0)
    sitk.WriteTransform(scale, str(folder / "scale.tfm"))
    made["scale"] = folder / "scale.tfm"
    bspline = sitk.BSplineTransform(3)
    sitk.WriteTransform(bspline, str(folder / "bspline.tfm"))
    made["bspline"] = folder / "bspline.tfm"
    sitk.WriteTransform(sitk.Euler2DTransform(), str(folder / "flat.tfm"))
    made["flat"] = folder / "flat.tfm"
    rigid = sitk.Euler3DTransform((0, 0, 0), 0.0, 0.0, 0.05, (2.0, 0.0, 0.0))
    sitk.WriteTransform(rigid, str(folder / "rigid.tfm"))
    made["rigid"] = folder / "rigid.tfm"
    return made


@pytest.fixture(scope="module")
def finished_run(example_volume, tmp_path_factory):
    """A finished 2-iteration run (checkpoints 0000 at itr 0, 0001 at itr 2)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    config = TrainConfig(
        volpath=str(example_volume[0]), outpath=str(out), n_total_itrs=2, n_save_every_itrs=2, **TINY
    )
    done = run_training(train(config))
    assert done.itr == 2
    return out


def _config(files, out, **kw):
    base = {"volpath": str(files["ct"]), "outpath": str(out), "n_total_itrs": 2, **TINY}
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize(
    "kw,words",
    [
        ({"maskpath": "small"}, ["small.nii.gz", "shape", "resample"]),
        ({"maskpath": "shifted"}, ["shifted.nii.gz", "grid"]),
        ({"maskpath": "zero"}, ["zero.nii.gz", "empty"]),
        ({"maskpath": "negative"}, ["negative.nii.gz", "negative"]),
        ({"volpath": "air"}, ["air.nii.gz", "constant"]),
        ({"volpath": "missing"}, ["missing.nii.gz", "no such"]),
        ({"warp": "garbage"}, ["--warp", "garbage.tfm", "cannot read"]),
        ({"warp": "scale"}, ["--warp", "scale.tfm", "scales"]),
        ({"warp": "bspline"}, ["--warp", "bspline.tfm", "BSplineTransform"]),
        ({"warp": "flat"}, ["--warp", "flat.tfm", "3D"]),
        ({"warp": "folder"}, ["--warp", "folder"]),
        ({"ty": (-10, 10)}, ["--ty -10 10", "--sdd"]),
        ({"ty": (900, 1100)}, ["--ty 900 1100"]),
        ({"tx": (-5000, 5000)}, ["--tx -5000 5000"]),
        ({"batch_size": 10**7}, ["--batch_size 10000000", "GiB"]),
    ],
)
def test_a_run_refuses_bad_inputs_before_writing(files, tmp_path, kw, words):
    kw = {
        k: (
            files.get(v, tmp_path / f"{v}.nii.gz")
            if k in ("maskpath", "volpath", "warp") and isinstance(v, str)
            else v
        )
        for k, v in kw.items()
    }
    if kw.get("warp") == tmp_path / "folder.nii.gz":
        kw["warp"] = tmp_path
    kw = {k: str(v) if isinstance(v, Path) else v for k, v in kw.items()}
    out = tmp_path / "run"
    with pytest.raises(XvrInputError) as info:
        train(_config(files, out, **kw))
    message = str(info.value)
    assert all(w in message for w in words), message
    assert "\n" not in message
    _nothing_written(out)


def test_a_good_warp_and_mask_are_accepted(files, finished_run, tmp_path):
    config = _config(
        files,
        tmp_path / "run",
        maskpath=str(files["mask"]),
        warp=str(files["rigid"]),
        ckptpath=str(finished_run / "0001.pth"),
        n_total_itrs=1,
    )
    assert run_training(train(config)).itr == 1


def test_output_under_a_file_is_refused(files, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(XvrInputError, match="afile is a file"):
        train(_config(files, tmp_path / "afile" / "run"))
    with pytest.raises(XvrInputError, match="is a file; give a folder"):
        train(_config(files, tmp_path / "afile"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_output_is_refused(files, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(XvrOutputError, match="no permission"):
            train(_config(files, locked / "run"))
    finally:
        locked.chmod(0o755)


# ------------------------------------------------------------------ checkpoints: finetune, restart
def _edited(finished_run, tmp_path, change) -> Path:
    ckpt = torch.load(finished_run / "0001.pth", weights_only=True)
    change(ckpt)
    path = tmp_path / "edited" / "0001.pth"
    path.parent.mkdir()
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize(
    "kw,words",
    [
        ({"parameterization": "euler_angles"}, ["--parameterization quaternion_adjugate"]),
        ({"norm_layer": "groupnorm"}, ["--norm_layer groupnorm1"]),
        ({"unit_conversion_factor": 1.0}, ["--unit_conversion_factor 1000"]),
        ({"reuse_optimizer": True, "n_total_itrs": 2}, ["--reuse_optimizer", "--n_total_itrs above 2"]),
    ],
)
def test_finetune_from_an_incompatible_model_is_refused(files, finished_run, tmp_path, kw, words):
    out = tmp_path / "run"
    with pytest.raises(XvrInputError) as info:
        train(_config(files, out, ckptpath=str(finished_run / "0001.pth"), **kw))
    assert all(w in str(info.value) for w in words), str(info.value)
    _nothing_written(out)


@pytest.mark.parametrize(
    "change,words",
    [
        (lambda c: c.update(model_state_dict=[1, 2], weights_sha256=None), ["model_state_dict"]),
        (lambda c: c.pop("optimizer_state_dict"), ["optimizer_state_dict"]),
        (lambda c: c.update(itr="x"), ["itr='x'"]),
        (lambda c: c.update(rng=[{"torch": 1}]), ["rng"]),
        (lambda c: c["config"].update(batch_size="abc"), ["--batch_size 'abc'"]),
        (lambda c: c["config"].update(lr=None), ["--lr None"]),
        (lambda c: c["config"].update(ty=[2000, 3000]), ["--ty 2000 3000"]),
    ],
)
def test_restart_from_a_damaged_checkpoint_is_refused(finished_run, tmp_path, change, words):
    path = _edited(finished_run, tmp_path, change)
    out = tmp_path / "elsewhere"
    with pytest.raises(XvrInputError) as info:
        restart(path, outpath=out, n_total_itrs=4)
    assert str(path) in str(info.value) and all(w in str(info.value) for w in words), str(info.value)
    _nothing_written(out)
    assert sorted(p.name for p in path.parent.iterdir()) == ["0001.pth"]


def test_restart_of_a_finished_run_changes_nothing(finished_run):
    before = {p.name: p.read_bytes() for p in finished_run.iterdir()}
    with pytest.raises(XvrInputError, match="the run is finished .*--n_total_itrs above 2"):
        restart(finished_run)
    with pytest.raises(XvrInputError, match="--n_total_itrs above 2"):
        restart(finished_run, n_total_itrs=1)
    assert {p.name: p.read_bytes() for p in finished_run.iterdir()} == before


def test_restart_never_writes_where_a_stored_outpath_points(finished_run, tmp_path):
    elsewhere = tmp_path / "stored"
    path = _edited(finished_run, tmp_path, lambda c: c["config"].update(outpath=str(elsewhere)))
    done = run_training(restart(path, n_total_itrs=3))
    assert done.itr == 3 and done.path.parent == path.parent
    assert not elsewhere.exists()


# ------------------------------------------------------------------ the CLI: one line, exit 2
def _cli(*args, **popen) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*XVR, *map(str, args)],
        env=ENV,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=240,
        **popen,
    )


def _error_line(run: subprocess.CompletedProcess) -> str:
    lines = [x for x in run.stderr.splitlines() if x.startswith("Error:")]
    assert run.returncode == 2 and "Traceback" not in run.stderr and len(lines) == 1, run.stderr[-2000:]
    return lines[0]


def test_cli_refuses_a_mask_on_another_grid_before_writing(files, tmp_path):
    out = tmp_path / "run"
    line = _error_line(
        _cli(
            "train", "-v", files["ct"], "-m", files["small"], "-o", out, "--n_total_itrs", 2, *cli_args(TINY)
        )
    )
    assert "small.nii.gz" in line and "resample" in line
    _nothing_written(out)


def _file_size_limit(limit: int):
    def apply():
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # the default kills; the CLI must handle it
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_cli_on_a_file_size_limit_refuses_before_writing(files, tmp_path):
    out = tmp_path / "run"
    run = _cli(
        "train",
        "-v",
        files["ct"],
        "-o",
        out,
        "--n_total_itrs",
        2,
        *cli_args(TINY),
        preexec_fn=_file_size_limit(200_000),
    )
    line = _error_line(run)
    assert "0000.pth" in line and "file-size limit" in line
    _nothing_written(out)
