"""Reading and writing: volumes, X-ray images with their intrinsics, results."""

from __future__ import annotations

from .._lazy import lazy_exports

_WHERE = {  # name -> submodule: imported on first use, so `napari_xvr.io.atomic` stays light
    "XRay": ".xray",
    "atomic_dir": ".atomic",
    "atomic_write_bytes": ".atomic",
    "atomic_write_files": ".atomic",
    "atomic_write_text": ".atomic",
    "preprocess_xray": ".xray",
    "read_image": ".volume",
    "read_volume": ".volume",
    "read_xray": ".xray",
}

__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
