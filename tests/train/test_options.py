"""xvr 0.1.0's training options: each one changes what the trainer does."""

from __future__ import annotations

import sys
import types

import click
import pytest
import torch
from train_helpers import TINY

from napari_xvr.cli.aliases import all_names, kebab
from napari_xvr.cli.train import train as train_command
from napari_xvr.errors import XvrInputError
from napari_xvr.train import TrainConfig
from napari_xvr.train import loop as loop_module
from napari_xvr.train.checkpoint import MODEL_DEFAULTS
from napari_xvr.train.loop import Trainer
from napari_xvr.train.loss import chamfer_distance, hausdorff_loss


def _trainer(tmp_path, ct, mask=None, **over) -> Trainer:
    kw = {**TINY, "p_augmentation": 0.0, **over}
    config = TrainConfig(
        volpath=str(ct),
        maskpath=None if mask is None else str(mask),
        outpath=str(tmp_path / "run"),
        n_total_itrs=4,
        **kw,
    )
    return Trainer(config)


def _count_renders(monkeypatch) -> list:
    calls = []
    original = Trainer._render

    def spy(self, drr, pose, masks):
        calls.append(masks)
        return original(self, drr, pose, masks)

    monkeypatch.setattr(Trainer, "_render", spy)
    return calls


def test_geodesic_only_renders_no_prediction_drrs(train_volume, tmp_path, monkeypatch):
    ct, mask = train_volume
    calls = _count_renders(monkeypatch)
    trainer = _trainer(tmp_path, ct, mask, geodesic_only=True, weight_geo=0.5)
    log = trainer.step(0)
    assert calls == [False]  # one render (the sampled poses, no labels), none of the predictions
    img, pred = log["images"]
    assert pred is None and img.shape == (2, 1, 32, 32)
    assert log["ncc"] == 0 and log["dice"] == 0 and log["haus"] == 0 and log["geo"] > 0
    assert log["loss"] == pytest.approx(0.5 * log["geo"], rel=1e-5)  # weight_geo * geodesic alone
    assert trainer.model.rot_regression.weight.grad is not None  # the geodesic still trains it

    calls.clear()
    _trainer(tmp_path, ct, mask).step(0)
    assert calls == [True, True]  # default: sampled and predicted poses, both with labels


def test_geodesic_only_run_yields_steps_without_pred(train_volume, tmp_path):
    ct, _ = train_volume
    config = TrainConfig(
        volpath=str(ct),
        outpath=str(tmp_path / "g"),
        n_total_itrs=2,
        n_save_every_itrs=5,
        geodesic_only=True,
        **TINY,
    )
    steps = [e for e in loop_module.train(config) if isinstance(e, loop_module.TrainStep)]
    assert [s.itr for s in steps] == [0, 1] and steps[0].drr is not None and steps[0].pred is None


def test_weight_haus_changes_the_loss_and_zero_costs_nothing(train_volume, tmp_path, monkeypatch):
    ct, mask = train_volume
    off = _trainer(tmp_path, ct, mask, weight_haus=0.0).step(0)
    on = _trainer(tmp_path, ct, mask, weight_haus=5.0).step(0)
    assert off["geo"] == pytest.approx(on["geo"]) and off["dice"] == pytest.approx(on["dice"])
    assert off["haus"] == 0 and on["haus"] > 0
    assert on["loss"] == pytest.approx(off["loss"] + 5.0 * on["haus"], rel=1e-4)

    def boom(*args, **kwargs):
        raise AssertionError("the Hausdorff term was computed")

    monkeypatch.setattr("napari_xvr.train.loss.hausdorff_loss", boom)
    _trainer(tmp_path, ct, mask, weight_haus=0.0).step(0)  # weight 0: not computed at all
    _trainer(tmp_path, ct, None, weight_haus=5.0).step(0)  # no labelmap: nothing to compare


def test_n_samples_reaches_the_renderer(train_volume, tmp_path, monkeypatch):
    from diffdrr.renderers import Trilinear

    seen = []
    original = Trilinear.forward

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("n_points"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trilinear, "forward", spy)
    ct, _ = train_volume
    a = _trainer(tmp_path, ct, n_samples=17).step(0)
    assert seen and set(seen) == {17}
    seen.clear()
    b = _trainer(tmp_path, ct, n_samples=300).step(0)
    assert set(seen) == {300}
    assert a["images"][0].shape == b["images"][0].shape
    assert not torch.allclose(a["images"][0], b["images"][0])  # a coarser integral of the same rays


def test_hausdorff_loss_measures_distance():
    true = torch.zeros(1, 2, 32, 32)
    true[:, 1, 10:20, 10:20] = 1
    true[:, 0] = 1 - true[:, 1]
    losses = [float(hausdorff_loss(true, torch.roll(true, s, -1))) for s in (0, 1, 3, 6)]
    assert losses[0] == 0 and losses == sorted(losses) and losses[3] > 20 * losses[1]
    pred = torch.roll(true, 3, -1).requires_grad_(True)
    hausdorff_loss(true, pred).sum().backward()
    assert pred.grad[:, 1].abs().sum() > 0 and pred.grad[:, 0].abs().sum() == 0  # no background
    assert float(hausdorff_loss(true[:, :1], true[:, :1])) == 0  # no labels at all: 0
    region = torch.zeros(1, 1, 7, 7, dtype=torch.bool)
    region[..., 3, 3] = True
    dist = chamfer_distance(region, max_distance=4)
    assert dist[0, 0, 3, 6] == 3 and dist[0, 0, 0, 0] == 4  # exact to the cap, capped beyond it
    assert dist[0, 0, 2, 2] == pytest.approx(2**0.5)


def test_reverse_x_axis_defaults_to_xvrs_false():
    assert TrainConfig(volpath="a", outpath="b").reverse_x_axis is False
    assert MODEL_DEFAULTS["reverse_x_axis"] is False
    option = next(p for p in train_command.params if p.name == "reverse_x_axis")
    assert option.default is False


def _parse(*args: str) -> dict:
    required = [
        "-v",
        ".",
        "-o",
        "out",
        "--sdd",
        "1020",
        "--height",
        "32",
        "--delx",
        "2",
        *(w for k in ("r1", "r2", "r3", "tx", "ty", "tz") for w in (f"--{k}", "-1", "1")),
    ]
    ctx = train_command.make_context("train", [*required, *args])
    return ctx.params


def test_cli_on_off_forms_and_kebab_aliases():
    flags = [p for p in train_command.params if isinstance(p, click.Option) and p.is_bool_flag]
    assert flags
    for option in flags:
        assert option.secondary_opts, f"--{option.name} has no --no- form"
        name = option.opts[0]
        no = option.secondary_opts[0]
        assert _parse(name)[option.name] is True and _parse(no)[option.name] is False
        assert _parse(kebab(name))[option.name] is True and _parse(kebab(no))[option.name] is False
    names = all_names(train_command)
    for name, dest in list(names.items()):
        if "_" in name:
            assert names[kebab(name)] == dest
    params = _parse("--n-total-itrs", "7", "--weight-haus", "0.5", "--no-reverse-x-axis", "--group", "g")
    assert (params["n_total_itrs"], params["weight_haus"], params["group"]) == (7, 0.5, "g")
    assert params["reverse_x_axis"] is False
    help_text = train_command.get_help(click.Context(train_command))
    assert "--n-total-itrs" not in help_text and "--n_points" not in help_text  # hidden aliases


def test_n_points_is_a_hidden_alias_of_n_samples(tmp_path, monkeypatch):
    seen = {}

    def fake_train(config, overwrite=False):
        seen["config"] = config
        return iter(())

    monkeypatch.setattr(loop_module, "train", fake_train)
    monkeypatch.setattr("napari_xvr.cli.train._run", lambda events, verbose: list(events))
    base = [
        "-v",
        str(tmp_path),
        "-o",
        str(tmp_path / "o"),
        "--sdd",
        "1020",
        "--height",
        "32",
        "--delx",
        "2",
        *(w for k in ("r1", "r2", "r3", "tx", "ty", "tz") for w in (f"--{k}", "-1", "1")),
    ]
    train_command.main([*base, "--n_points", "64"], standalone_mode=False)
    assert seen["config"].n_samples == 64
    train_command.main(base, standalone_mode=False)
    assert seen["config"].n_samples == 500
    with pytest.raises(XvrInputError, match="n_points"):
        train_command.main([*base, "--n_points", "64", "--n_samples", "32"], standalone_mode=False)


def test_old_config_with_n_points_still_restarts():
    old = {"volpath": "a", "outpath": "b", "n_points": None, "reverse_x_axis": True}
    config = TrainConfig.from_dict(old)
    assert config.n_samples == 500 and config.reverse_x_axis is True  # its own flip value stays
    assert TrainConfig.from_dict({**old, "n_points": 64}).n_samples == 64


def test_group_goes_to_wandb(monkeypatch, tmp_path):
    seen = {}
    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: seen.update(kw) or "run"
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_MODE", "offline")
    config = TrainConfig(volpath="a", outpath=str(tmp_path), group="cohort-1", name="n")
    assert loop_module._wandb(config, []) == "run"
    assert seen["group"] == "cohort-1" and seen["name"] == "n" and seen["project"] == "xvr"
