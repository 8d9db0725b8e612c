"""Ways to compare an X-ray with its DRR, for the eye: checkerboard, difference, DRR edges.

A converged overlay reads as a uniform tint in which sub-mm residuals cannot be judged; these
make a misalignment visible as broken edges across tiles, a signed residual, or the DRR's edges
over the X-ray. Plain numpy (the napari widgets and scripts call it). Both images are brought to
a common scale first: each to [0, 1] by robust percentiles, then (difference) the DRR fitted to
the X-ray by least squares (gain and offset), so what is left is misalignment and what the DRR
does not model.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

MODES = ("overlay", "checkerboard", "difference", "edges", "flicker")
"""``overlay`` and ``flicker`` are shown with the layers themselves (blended, alternating)."""
EDGE_PERCENTILE = 90.0
"""A DRR pixel is an edge when its gradient is above this percentile of the image's."""


def normalized(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """`image` to [0, 1] by its `low`-`high` percentiles (finite pixels), clipped."""
    image = np.asarray(image, dtype=np.float64)
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        raise ValueError("the image has no finite pixel")
    lo, hi = np.percentile(finite, [low, high])
    scaled = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    return np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0)


def _check(xray: np.ndarray, drr: np.ndarray) -> None:
    if np.shape(xray) != np.shape(drr) or np.ndim(xray) != 2:
        raise ValueError(
            f"the X-ray {np.shape(xray)} and the DRR {np.shape(drr)} must be two 2D images of the same size"
        )


def checkerboard(xray: np.ndarray, drr: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Tiles alternating X-ray and DRR (`tiles` along the longer side), each normalised."""
    _check(xray, drr)
    h, w = np.shape(xray)
    size = max(1, int(np.ceil(max(h, w) / max(1, tiles))))
    rows, cols = np.indices((h, w)) // size
    return np.where((rows + cols) % 2 == 0, normalized(xray), normalized(drr))


def difference(xray: np.ndarray, drr: np.ndarray) -> np.ndarray:
    """X-ray minus the DRR fitted to it (gain and offset, least squares), both normalised:
    signed, about [-1, 1], 0 where the DRR explains the X-ray."""
    _check(xray, drr)
    x, d = normalized(xray), normalized(drr)
    design = np.stack([d.ravel(), np.ones(d.size)], axis=1)
    (gain, offset), *_ = np.linalg.lstsq(design, x.ravel(), rcond=None)
    return x - (gain * d + offset)


def edges(drr: np.ndarray, sigma: float = 1.0, percentile: float = EDGE_PERCENTILE) -> np.ndarray:
    """The DRR's edges: 1 where its smoothed gradient magnitude is in the top share, else 0."""
    smooth = ndimage.gaussian_filter(normalized(drr), sigma)
    magnitude = np.hypot(ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1))
    return (magnitude > np.percentile(magnitude, percentile)).astype(np.float32)


def compare(xray: np.ndarray, drr: np.ndarray, mode: str, tiles: int = 8) -> np.ndarray | None:
    """The image of `mode` (None for the modes shown with the layers: overlay, flicker)."""
    if mode not in MODES:
        raise ValueError(f"comparison {mode!r}: use one of {', '.join(MODES)}")
    if mode == "checkerboard":
        return checkerboard(xray, drr, tiles).astype(np.float32)
    if mode == "difference":
        return difference(xray, drr).astype(np.float32)
    if mode == "edges":
        _check(xray, drr)
        return edges(drr)
    return None
