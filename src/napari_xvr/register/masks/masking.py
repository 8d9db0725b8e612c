"""Which X-ray pixels the similarity should leave out: saturated plateaus and collimated borders.

The rule (:func:`valid_mask`), on an X-ray in the reader's convention (bone bright: full
attenuation, i.e. no dose, is the bright end):

1. *Saturated plateaus*: pixels within ``tol`` (a fraction of the image's range) of the image's
   max value, in 8-connected groups of at least ``min_area`` pixels, and small groups (under
   ``small`` of the image) at its min.  Burned-in text, an L/R marker, a collimator's painted
   shadow and clipped metal sit exactly at an extreme; a real anatomy pixel reaches it alone or
   not at all. A large plateau at the min is the direct beam around the patient, which the DRR
   shows too (air): it stays, or the body's outline would be lost with it.
2. *Flat borders*: pixels near the full-attenuation end (within ``near`` of the range) whose
   ``window`` x ``window`` neighbourhood is flat (standard deviation under ``flat`` of the range),
   in groups that touch the image border, grown by half a window within that end: a
   collimator's shadow with some scatter noise.  Only the full-attenuation end: at the other
   end such regions are air around the patient, which the DRR shows too.
3. *Collimator shadows* found geometrically (:mod:`.collimation`): straight blade edges or a
   circular iris with a brighter or painted border beyond them, noisy or not.
4. All grown by ``margin`` pixels, for the soft edge of a blade and the edges of glyphs.

Everything else is valid.  With ``--xray_mask auto`` the engine takes the mask to each stage's
size (:func:`stage_mask`) and the similarity compares only the pixels and windows it keeps
(:meth:`~napari_xvr.register.optimiser.similarity.Similarity.leave_out`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

EIGHT = np.ones((3, 3), bool)


def _groups(candidates: np.ndarray, min_area: int = 1, border: bool = False) -> np.ndarray:
    """The 8-connected groups of `candidates` with >= `min_area` pixels (touching the border)."""
    labels, n = ndimage.label(candidates, structure=EIGHT)
    if n == 0:
        return np.zeros_like(candidates)
    keep = np.bincount(labels.ravel(), minlength=n + 1) >= min_area
    if border:
        edge = np.zeros(n + 1, bool)
        edge[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = True
        keep &= edge
    keep[0] = False
    return keep[labels]


def valid_mask(
    image,
    tol: float = 1e-4,
    min_area: int = 4,
    near: float = 0.02,
    flat: float = 1e-3,
    window: int = 5,
    margin: int = 1,
    bone_bright: bool = True,
    small: float = 0.005,
    collimation: bool = True,
) -> np.ndarray:
    """Boolean (H, W): True where a pixel may enter the similarity (see the module's rule)."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"valid_mask: expected an (H, W) image, got shape {img.shape}")
    finite = np.isfinite(img)
    if not finite.any():
        return np.zeros(img.shape, bool)
    lo, hi = float(img[finite].min()), float(img[finite].max())
    span = hi - lo
    if span <= 0:
        return np.zeros(img.shape, bool)  # a constant image has nothing to compare
    img = np.where(finite, img, lo)
    dense = img >= hi - tol * span if bone_bright else img <= lo + tol * span
    thin = img <= lo + tol * span if bone_bright else img >= hi - tol * span
    big = max(min_area + 1, int(small * img.size))
    left_out = _groups(dense, min_area) | (_groups(thin, min_area) & ~_groups(thin, big))
    mean = ndimage.uniform_filter(img, window, mode="nearest")
    var = ndimage.uniform_filter(img * img, window, mode="nearest") - mean * mean
    is_flat = var <= (flat * span) ** 2
    full_end = img >= hi - near * span if bone_bright else img <= lo + near * span
    shadow = _groups(is_flat & full_end, border=True)
    if window > 1 and shadow.any():  # the flat test is blind within half a window of its edge
        shadow = ndimage.binary_dilation(shadow, EIGHT, iterations=window // 2) & full_end
    left_out |= shadow
    if collimation:
        from .collimation import open_field

        field = open_field(img if bone_bright else -img)
        if field is not None:
            left_out |= ~field
    if margin > 0 and left_out.any():
        left_out = ndimage.binary_dilation(left_out, EIGHT, iterations=margin)
    return ~left_out & finite


def masked_fraction(mask: np.ndarray) -> float:
    """The share of pixels a :func:`valid_mask` leaves out."""
    mask = np.asarray(mask, bool)
    return float(1.0 - mask.mean()) if mask.size else 0.0


def stage_mask(valid: np.ndarray, size: tuple[int, int]):
    """The valid mask at a stage's detector size (torch bool (1, 1, h, w)): a stage pixel is
    valid only when every X-ray pixel it averages is."""
    import torch
    from torch.nn.functional import interpolate

    left_out = torch.as_tensor(~np.asarray(valid, bool), dtype=torch.float32)[None, None]
    return interpolate(left_out, size=tuple(size), mode="area") <= 0
