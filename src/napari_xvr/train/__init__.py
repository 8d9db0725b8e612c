"""Patient-specific pose regression: sampler, augmentations, network, loss, loop, checkpoints.

Training is a generator of events (:class:`TrainStarted`, :class:`TrainStep`,
:class:`Checkpointed`, :class:`TrainDone`) consumed by the CLI, napari and scripts::

    from napari_xvr.train import TrainConfig, train, run_training
    done = run_training(train(TrainConfig(volpath="ct.nii.gz", outpath="models", ...)))
"""

from __future__ import annotations

import importlib

_WHERE = {  # name -> submodule: imported on first use, so `xvr --help` stays light
    "TrainConfig": ".config",
    "Checkpointed": ".loop",
    "StopToken": ".loop",
    "TrainDone": ".loop",
    "Trainer": ".loop",
    "TrainStarted": ".loop",
    "TrainStep": ".loop",
    "restart": ".loop",
    "run_training": ".loop",
    "train": ".loop",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
