"""Patient-specific pose regression: sampler, augmentations, network, loss, loop, checkpoints.

Training is a generator of events (:class:`TrainStarted`, :class:`TrainStep`,
:class:`Checkpointed`, :class:`TrainDone`) consumed by the CLI, napari and scripts::

    from napari_xvr.train import TrainConfig, train, run_training
    done = run_training(train(TrainConfig(volpath="ct.nii.gz", outpath="models", ...)))
"""

from __future__ import annotations

from .._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
