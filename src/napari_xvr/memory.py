"""Memory: what this process can spare, the budget work may plan for, and render estimates.

Work that could allocate a lot (a render, an animation, a volume or frames read from a header)
estimates its bytes first and calls :func:`check_memory`, which refuses it with a message when
the estimate exceeds :func:`memory_budget` (``NAPARI_XVR_MAX_MEMORY_GB`` caps the budget).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .errors import XvrInputError

#: bytes a render needs per detector pixel (measured on CPU: trilinear ~18 kB with its 500 samples
#: per ray; Siddon ~44 bytes per voxel plane crossed; the fast renderer works slab by slab)
RENDER_BYTES_PER_PX = {"trilinear": 24_000, "fast": 1_024}
SIDDON_BYTES_PER_PLANE = 64
#: the largest share of the available memory one render or animation may plan to use
MEMORY_SHARE = 0.5
#: the environment variable that caps the budget, in GiB
MAX_MEMORY_ENV = "NAPARI_XVR_MAX_MEMORY_GB"


def available_memory() -> int:
    """Bytes this process can still allocate: free RAM, within a cgroup limit and RLIMIT_AS."""
    import resource

    free = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = 4 << 30
    try:  # a container's limit (cgroup v2)
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            free = min(free, max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            import psutil  # noqa: F401  (optional: the process's own size)

            free = min(free, max(soft - psutil.Process().memory_info().vms, 0))
    except (ImportError, OSError, ValueError, AttributeError):
        pass
    return int(free)


def memory_budget() -> int:
    """Bytes one render/animation may plan to allocate (``NAPARI_XVR_MAX_MEMORY_GB`` caps it)."""
    budget = int(available_memory() * MEMORY_SHARE)
    cap = os.environ.get(MAX_MEMORY_ENV)
    if cap:
        with contextlib.suppress(ValueError):
            budget = min(budget, int(float(cap) * (1 << 30)))
    return budget


def device_memory(device) -> int:
    """A device's total memory: the GPU's, else this machine's physical memory (0 when unknown)."""
    try:
        if getattr(device, "type", device) == "cuda":
            import torch

            return int(torch.cuda.get_device_properties(device).total_memory)
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError, RuntimeError):
        return 0


def gib(n: float) -> str:
    """`n` bytes as '1.5 GiB', or '40 MiB' below a quarter GiB."""
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 28 else f"{n / (1 << 20):.0f} MiB"


def render_bytes(height: int, width: int, renderer: str = "trilinear", volume_shape=None) -> int:
    """A render's peak memory, estimated from the detector size before anything is allocated."""
    if renderer == "siddon":
        planes = sum(int(s) for s in volume_shape) + 3 if volume_shape is not None else 3 * 512
        per_px = SIDDON_BYTES_PER_PLANE * planes
    else:
        per_px = RENDER_BYTES_PER_PX.get(renderer, RENDER_BYTES_PER_PX["trilinear"])
    return int(height) * int(width) * per_px


def check_memory(needed: int, what: str, fix: str) -> None:
    """Refuse (before allocating) work whose estimate exceeds the memory budget."""
    budget = memory_budget()
    if needed > budget:
        raise XvrInputError(
            f"{what} would need about {gib(needed)} of memory, more than the "
            f"{gib(budget)} this machine can spare; {fix}"
        )
