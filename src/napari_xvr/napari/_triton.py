"""Keep triton's LLVM and Mesa's from meeting in one napari process.

Mesa's software OpenGL (llvmpipe: Xvfb, VMs, remote desktops) and triton each load their own LLVM;
triton imported after napari has made its GL context segfaults the process. Our widgets pull in
``torch._dynamo`` (through ``torch.optim`` and ``diffdrr.metrics``), which imports triton when it
is installed. napari-xvr never compiles with triton, so in the napari plugin:

- without a CUDA device triton is never imported (it can do nothing on the CPU);
- with one, it is imported now if no LLVM is loaded yet (the order that works), and kept out if
  one is (a software GL context already exists).

``NAPARI_XVR_TRITON=1`` turns this off.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def llvm_loaded(maps: Path = Path("/proc/self/maps")) -> bool:
    """True when an LLVM library (Mesa's llvmpipe links one) is mapped into this process."""
    try:
        text = maps.read_text(errors="replace")
    except OSError:  # not Linux: no Mesa llvmpipe to clash with
        return False
    return any(name in text for name in ("libLLVM", "libgallium", "swrast_dri", "llvmpipe"))


def guard_triton() -> str:
    """Apply the rule above once; returns what was done (for logs and tests)."""
    if os.environ.get("NAPARI_XVR_TRITON") == "1":
        return "allowed by NAPARI_XVR_TRITON=1"
    if "triton" in sys.modules:
        return "already imported" if sys.modules["triton"] is not None else "kept out"
    import torch

    if not torch.cuda.is_available() or llvm_loaded():
        sys.modules["triton"] = None  # type: ignore[assignment]  # `import triton` now fails; torch treats it as absent
        log.debug("napari-xvr: triton kept out of this napari process (see napari_xvr.napari._triton)")
        return "kept out"
    import torch._dynamo  # noqa: F401  (imports triton before any GL context loads LLVM)

    return "imported first"
