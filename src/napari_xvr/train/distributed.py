"""Several processes (``torchrun``): DistributedDataParallel, gloo on CPUs, nccl on GPUs.

Each rank renders its own batch from its own RNG stream; DDP all-reduces the gradients; rank 0
writes checkpoints and logs. Everything here is a no-op in a single process; the helpers that
are not about DDP live in :mod:`napari_xvr.distributed` (named here too, as training uses them).
"""

from __future__ import annotations

import contextlib

import torch

from ..distributed import (
    active,
    any_rank,
    barrier,
    gather_objects,
    init_from_env,
    launched,
    local_device,
    rank,
    shutdown,
    world_size,
)

__all__ = [
    "active",
    "any_rank",
    "barrier",
    "gather_objects",
    "init_from_env",
    "launched",
    "local_device",
    "no_sync",
    "rank",
    "shutdown",
    "world_size",
    "wrap",
]


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def no_sync(module):
    """Skip the all-reduce on accumulation steps that do not end in an optimiser step."""
    return module.no_sync() if hasattr(module, "no_sync") else contextlib.nullcontext()
