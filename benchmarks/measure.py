"""Timing and peak-memory helpers for the benchmarks (CPU RSS or CUDA max_memory_allocated)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import threading
import time
from collections.abc import Callable

import torch


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim() -> None:
    """Hand freed heap back to the OS so the next peak counts fresh pages (glibc only)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(fn: Callable[[], object], device: torch.device) -> float:
    """Extra peak memory (MiB) of one call: RSS sampled every ~1 ms on CPU, allocator peak on CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    if not os.path.exists("/proc/self/statm"):
        return float("nan")
    _trim()
    base = peak = _rss_bytes()
    done = threading.Event()

    def watch():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_bytes())
            time.sleep(0.001)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    peak = max(peak, _rss_bytes())
    return (peak - base) / 2**20


def time_calls(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict:
    """Seconds per call of each function, interleaved (min and median of `repeats`, after a warm-up)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return {
        name: {"min_s": min(ts), "median_s": sorted(ts)[len(ts) // 2], "n": len(ts)}
        for name, ts in times.items()
    }


def environment(device: torch.device) -> dict:
    import diffdrr

    import napari_xvr

    env = {
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine()
        ),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "diffdrr": getattr(diffdrr, "__version__", "?"),
        "napari_xvr": getattr(napari_xvr, "__version__", "?"),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            env["device_name"] = names[0]
    except OSError:
        pass
    return env
