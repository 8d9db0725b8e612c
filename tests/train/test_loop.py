"""The training generator: events, exact resume, stop, config errors."""

from __future__ import annotations

import csv

import pytest
import torch
from train_helpers import TINY

from napari_xvr.errors import XvrInputError
from napari_xvr.train import (
    Checkpointed,
    StopToken,
    TrainConfig,
    TrainDone,
    TrainStarted,
    TrainStep,
    restart,
    run_training,
    train,
)


def test_train_events_and_exact_resume(train_volume, tmp_path):
    ct, mask = train_volume
    config = TrainConfig(
        volpath=str(ct),
        maskpath=str(mask),
        outpath=str(tmp_path / "run"),
        n_total_itrs=6,
        n_save_every_itrs=3,
        **TINY,
    )
    events = list(train(config))
    assert isinstance(events[0], TrainStarted) and isinstance(events[-1], TrainDone)
    steps = [e for e in events if isinstance(e, TrainStep)]
    saved = [e for e in events if isinstance(e, Checkpointed)]
    assert [s.itr for s in steps] == list(range(6))
    assert [c.itr for c in saved] == [0, 3, 6]
    assert steps[0].drr.shape == (2, 32, 32) and steps[0].pred.shape == (2, 32, 32)
    assert steps[1].drr is None
    assert all(0 <= s.dice <= 1 and s.geo > 0 and torch.isfinite(torch.tensor(s.loss)) for s in steps)
    ckpt = torch.load(saved[1].path, weights_only=True)  # plain weights_only, no allow-list needed
    assert {
        "model_state_dict",
        "optimizer_state_dict",
        "scheduler_state_dict",
        "itr",
        "rng",
        "config",
        "date",
        "grads",
    } <= set(ckpt) and ckpt["itr"] == 3
    assert ckpt["grads"], "itr 3 is mid-accumulation: the pending gradients must be saved"
    with open(tmp_path / "run" / "losses.csv") as handle:
        logged = [float(r["loss"]) for r in csv.DictReader(handle)]
    assert logged == pytest.approx([s.loss for s in steps], rel=1e-6)

    final_a = torch.load(saved[2].path, weights_only=True)["model_state_dict"]
    again = list(restart(saved[1].path))
    resumed = [e for e in again if isinstance(e, TrainStep)]
    assert [s.itr for s in resumed] == [3, 4, 5]
    assert [s.loss for s in resumed] == [s.loss for s in steps[3:]]  # bit-identical on the CPU
    final_b = torch.load(again[-1].path, weights_only=True)["model_state_dict"]
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)


def test_stop_token_checkpoints_and_finishes(train_volume, tmp_path):
    ct, _ = train_volume
    config = TrainConfig(
        volpath=str(ct), outpath=str(tmp_path / "run"), n_total_itrs=50, n_save_every_itrs=100, **TINY
    )
    stop, seen = StopToken(), []
    for event in train(config, stop):
        seen.append(event)
        if isinstance(event, TrainStep) and event.itr == 1:
            stop.stop()
    done = seen[-1]
    assert isinstance(done, TrainDone) and done.stopped and done.itr == 2
    assert torch.load(done.path, weights_only=True)["itr"] == 2


def test_finetune_with_warp_runs(train_volume, tmp_path):
    import SimpleITK as sitk

    ct, _ = train_volume
    base = TrainConfig(
        volpath=str(ct), outpath=str(tmp_path / "a"), n_total_itrs=1, n_save_every_itrs=5, **TINY
    )
    first = run_training(train(base))
    sitk.WriteTransform(
        sitk.Euler3DTransform((0, 0, 0), 0.0, 0.0, 0.05, (2.0, 0.0, 0.0)), str(tmp_path / "w.tfm")
    )
    tuned = TrainConfig(
        volpath=str(ct),
        outpath=str(tmp_path / "b"),
        n_total_itrs=2,
        n_save_every_itrs=5,
        ckptpath=str(first.path),
        warp=str(tmp_path / "w.tfm"),
        invert=True,
        **TINY,
    )
    done = run_training(train(tuned))
    assert done.itr == 2 and done.path.exists()


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"r1": (30, -30)}, "r1"),
        ({"parameterization": "rotation_7d"}, "parameterization"),
        ({"p_augmentation": 2.0}, "p_augmentation"),
        ({"reuse_optimizer": True}, "ckptpath"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_config_is_clear(bad, match):
    kw = {**TINY, **bad}
    with pytest.raises(XvrInputError, match=match):
        TrainConfig(volpath="ct.nii.gz", outpath="out", **kw)


def test_unknown_config_key_is_clear():
    with pytest.raises(XvrInputError, match="unknown training option"):
        TrainConfig.from_dict({"volpath": "a", "outpath": "b", "learning_rate": 1})
