"""Several processes under ``torchrun``: which rank this is, its device, gathering, barriers.

Shared by training (:mod:`napari_xvr.train.distributed`) and sharded registration
(:mod:`napari_xvr.register.workflows.shard`). Everything here is a no-op in a single process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def launched() -> bool:
    """True when started by torchrun (or another launcher setting WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device_name: str | None = None, backend: str | None = None) -> bool:
    """Join the process group torchrun describes; returns whether distributed is on.

    The backend is `backend`, else nccl on CUDA (unless `device_name` is cpu) and gloo otherwise.
    """
    if not launched() or dist.is_initialized():
        return dist.is_initialized()
    use_cuda = torch.cuda.is_available() and str(device_name or "auto") not in ("cpu",)
    dist.init_process_group(backend=backend or ("nccl" if use_cuda else "gloo"))
    return True


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_device(device: torch.device) -> torch.device:
    """On CUDA under torchrun, each rank takes the GPU LOCAL_RANK names."""
    if active() and device.type == "cuda":
        index = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return device


def gather_objects(obj) -> list:
    """Every rank's `obj`, in rank order (a one-item list in a single process)."""
    if not active():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool) -> bool:
    """True on every rank if `flag` is true on any (so all ranks stop together)."""
    if not active():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier() -> None:
    if active():
        dist.barrier()


def shutdown() -> None:
    if active():
        dist.destroy_process_group()
