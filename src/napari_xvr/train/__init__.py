"""Patient-specific pose regression: sampler, augmentations, network, loss, loop, checkpoints.

Training is a generator of events (:class:`TrainStarted`, :class:`TrainStep`,
:class:`Checkpointed`, :class:`TrainDone`) consumed by the CLI, napari and scripts::

    from napari_xvr.train import TrainConfig, train, run_training
    done = run_training(train(TrainConfig(volpath="ct.nii.gz", outpath="models", ...)))
"""

from .config import TrainConfig
from .loop import (
    Checkpointed,
    StopToken,
    TrainDone,
    Trainer,
    TrainStarted,
    TrainStep,
    restart,
    run_training,
    train,
)

__all__ = ["Checkpointed", "StopToken", "TrainConfig", "TrainDone", "TrainStarted", "TrainStep",
           "Trainer", "restart", "run_training", "train"]
