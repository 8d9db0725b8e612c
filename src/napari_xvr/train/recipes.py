"""Training recipes: a :class:`~.config.TrainConfig` resized for the machine that trains.

xvr's defaults (256 px DRRs, batch 116, the trilinear renderer) are made for a GPU. The CPU
recipe keeps the field of view and the sampling ranges a user set (the anatomy and the C-arm),
and changes only how the views are sampled and learnt: 64 px DRRs of the same field, a batch of
16 without gradient accumulation, a higher learning rate and napari-xvr's ``fast`` renderer.
Measured on a 2-core CPU (``python -m benchmarks.train_cpu``, docs/training.md): 0.37 s an
iteration, a chest model whose initial poses are within 20 mm for 20/20 held-out X-rays after
12 minutes (2000 iterations), and ``xvr register model`` from them 20/20 under 1 mm.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from .config import TrainConfig

CPU_RECIPE: dict[str, Any] = {
    "height": 64,
    "batch_size": 16,
    "lr": 2e-3,
    "renderer": "fast",
    "n_samples": 128,
    "n_grad_accum_itrs": 1,
    "n_total_itrs": 2000,
    "n_warmup_itrs": 20,
    "n_save_every_itrs": 100,
}
"""What the CPU recipe sets (``delx`` follows from ``height``: the field of view is kept)."""

RECIPES = ("cpu",)


def cpu_recipe(config: TrainConfig, keep: Iterable[str] = ()) -> TrainConfig:
    """`config` with the CPU recipe: :data:`CPU_RECIPE`, and the pixel size that keeps the field
    of view (``height x delx``, the recipe's input: it always resizes the DRRs). Other options
    named in `keep` (given explicitly by the user) stay as they are."""
    kept = set(keep) - {"height", "delx"}
    values: dict[str, Any] = {k: v for k, v in CPU_RECIPE.items() if k not in kept}
    values["delx"] = config.delx * config.height / int(values["height"])
    return dataclasses.replace(config, **values)


def apply_recipe(config: TrainConfig, recipe: str | None, keep: Iterable[str] = ()) -> TrainConfig:
    """`config` with the named recipe (None: as it is)."""
    if recipe is None or recipe == "none":
        return config
    if recipe != "cpu":
        from ..errors import XvrInputError

        raise XvrInputError(f"--recipe {recipe!r}: use one of {', '.join(RECIPES)} (or leave it out)")
    return cpu_recipe(config, keep)
