"""Find a collimator's shadow: the straight blade edges (turned up to ~20 deg) or the circular
iris around the open field, outside which no dose reached the detector.

In an X-ray of the reader's convention (dense is bright) the shadow is brighter than the field
next to it, and smoother (no anatomy, only scatter and noise), or painted flat by the vendor in
any value. The rule, on the image shrunk to at most :data:`WORK_PX` pixels:

1. *Edge points*: scanning in from each border (and out from the centre, for an iris), the
   place where the image steps down the most going inward, when that step is large against the
   image's range.
2. *A blade* is a straight line fitted robustly (RANSAC) to one side's edge points that holds for
   at least half of the side; *an iris* a circle fitted the same way to the radial scans'.
3. *Kept* only when the strip beyond it is brighter than the field along its edge or flat, and
   smoother than the field: a vertebra's or the skin's edge is not a blade.

:func:`open_field` returns the pixels inside every kept blade and iris (True), with a margin for
the blades' soft edge, or None when nothing was found.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

WORK_PX = 384
"""The long side (pixels) the search runs at."""
STEP = 0.12
"""An edge point steps down by at least this share of the image's range going inward."""
MAX_TILT_DEG = 22.0
INLIER_PX = 1.5
MIN_SPAN = 0.5
"""A blade's inliers cover at least this share of its side."""


def _normalised(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [0.5, 99.5])
    return np.clip((image - lo) / max(hi - lo, 1e-12), 0, 1)


def _steps(img: np.ndarray, k: int) -> np.ndarray:
    """For every row, mean(img[r, c-k:c]) - mean(img[r, c:c+k]) at each column c (0 where a
    window would leave the image): the step down going right."""
    h, w = img.shape
    csum = np.concatenate([np.zeros((h, 1)), np.cumsum(img, axis=1)], axis=1)
    out = np.zeros((h, w))
    c = np.arange(k, w - k + 1)
    out[:, c] = (csum[:, c] - csum[:, c - k]) / k - (csum[:, c + k] - csum[:, c]) / k
    return out


def _edge_points(img: np.ndarray, k: int, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the column (< reach * width) where the image steps down the most going right,
    if the step exceeds STEP; returns (rows, columns)."""
    steps = _steps(img, k)
    limit = max(k + 1, int(reach * img.shape[1]))
    steps[:, limit:] = 0
    cols = steps.argmax(axis=1)
    best = steps[np.arange(img.shape[0]), cols]
    rows = np.nonzero(best > STEP)[0]
    return rows.astype(np.float64), cols[rows].astype(np.float64)


def _ransac_line(rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator, trials: int = 200):
    """(slope, intercept, inliers) of col = slope * row + intercept, or None."""
    if len(rows) < 8:
        return None
    best = None
    max_slope = np.tan(np.deg2rad(MAX_TILT_DEG))
    for _ in range(trials):
        i, j = rng.choice(len(rows), 2, replace=False)
        if rows[i] == rows[j]:
            continue
        slope = (cols[j] - cols[i]) / (rows[j] - rows[i])
        if abs(slope) > max_slope:
            continue
        intercept = cols[i] - slope * rows[i]
        inliers = np.abs(cols - (slope * rows + intercept)) <= INLIER_PX
        if best is None or inliers.sum() > best[2].sum():
            best = (slope, intercept, inliers)
    if best is None:
        return None
    slope, intercept = np.polyfit(rows[best[2]], cols[best[2]], 1)
    inliers = np.abs(cols - (slope * rows + intercept)) <= INLIER_PX
    return float(slope), float(intercept), inliers


def _texture(img: np.ndarray) -> np.ndarray:
    """Local structure above the noise: a band-pass (2-pixel blur minus 6-pixel blur)."""
    return np.abs(ndimage.gaussian_filter(img, 2.0) - ndimage.gaussian_filter(img, 6.0))


def _consistent(img: np.ndarray, distance: np.ndarray, segment: np.ndarray, ids) -> bool:
    """Along an edge (signed `distance` in pixels, > 0 beyond it), every stretch (`segment`
    ids among `ids`: where the edge was seen) is brighter just beyond than just inside: a
    collimator's edge, not anatomy crossing a line."""
    ring_out = (distance > 2) & (distance < 7)
    ring_in = (distance < -2) & (distance > -7)
    votes = []
    for i in ids:
        out, inside = ring_out & (segment == i), ring_in & (segment == i)
        if out.sum() >= 4 and inside.sum() >= 4:
            votes.append(img[out].mean() - img[inside].mean() > STEP / 2)
    return len(votes) >= 4 and float(np.mean(votes)) >= 0.85


def _accept(img: np.ndarray, beyond: np.ndarray, inside_band: np.ndarray, need_flat: bool = False) -> bool:
    """A shadow is painted (flat), or brighter than most of the field along its edge and either
    smoother than the field or far brighter (a noisy unexposed border)."""
    if beyond.sum() < 8 or inside_band.sum() < 8:
        return False
    texture = _texture(img)
    out, band = img[beyond], img[inside_band]
    if np.median(texture[beyond]) < 5e-4 and out.std() < 0.05:
        return True
    if need_flat:
        return False
    gap = np.median(out) - np.median(band)
    above = np.median(out) > np.percentile(band, 60)
    smoother = np.median(texture[beyond]) <= 0.7 * np.median(texture[inside_band]) + 1e-3
    return bool(above and gap > STEP and (smoother or gap > 2 * STEP))


def _blade(img: np.ndarray, rng: np.random.Generator, k: int, need_flat: bool = False) -> np.ndarray | None:
    """The shadow of a blade at the image's left side (True beyond it), or None (`need_flat`:
    only a painted, flat one)."""
    h, w = img.shape
    rows, cols = _edge_points(img, k, 0.45)
    fit = _ransac_line(rows, cols, rng)
    if fit is None:
        return None
    slope, intercept, inliers = fit
    span = np.ptp(rows[inliers]) if inliers.any() else 0
    if inliers.sum() < MIN_SPAN * h * 0.6 or span < MIN_SPAN * h:
        return None
    rr, cc = np.mgrid[0:h, 0:w]
    edge = slope * rr + intercept
    beyond = cc < edge - 1
    band = (cc > edge + 2) & (cc < edge + 2 + max(4, w // 12))
    seen = np.unique((rows[inliers] // 8).astype(int))
    if not _consistent(img, edge - cc, rr // 8, seen):
        return None
    return beyond if _accept(img, beyond, band, need_flat) else None


def _iris(img: np.ndarray, rng: np.random.Generator, k: int, need_flat: bool = False) -> np.ndarray | None:
    """The shadow outside a circular iris (True beyond it), or None (`need_flat`: only a
    painted, flat one)."""
    h, w = img.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    n_angles, reach = 180, int(np.hypot(h, w) / 2)
    angles = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    radii = np.arange(reach)
    ys = cy + np.outer(np.sin(angles), radii)
    xs = cx + np.outer(np.cos(angles), radii)
    inside = (ys >= 0) & (ys <= h - 1) & (xs >= 0) & (xs <= w - 1)
    profiles = ndimage.map_coordinates(img, [ys.clip(0, h - 1), xs.clip(0, w - 1)], order=1)
    profiles = np.where(inside, profiles, np.nan)
    # step up going outward (brighter beyond), from the 30 % radius on
    out = np.full(profiles.shape, -np.inf)
    for r in range(max(k, int(0.3 * min(h, w) / 2)), reach - k):
        before, after = profiles[:, r - k : r], profiles[:, r : r + k]
        full = np.isfinite(before).all(axis=1) & np.isfinite(after).all(axis=1)
        step = np.where(full, after.sum(axis=1) - before.sum(axis=1), -np.inf) / k
        out[:, r] = np.where(np.isfinite(step), step, -np.inf)
    best_r = out.argmax(axis=1)
    ok = out[np.arange(n_angles), best_r] > STEP
    if ok.sum() < 0.15 * n_angles:
        return None
    px, py = xs[np.arange(n_angles), best_r][ok], ys[np.arange(n_angles), best_r][ok]
    best = None
    for _ in range(200):
        idx = rng.choice(len(px), 3, replace=False)
        a = np.c_[2 * px[idx], 2 * py[idx], np.ones(3)]
        b = px[idx] ** 2 + py[idx] ** 2
        try:
            ccx, ccy, c = np.linalg.solve(a, b)
        except np.linalg.LinAlgError:
            continue
        radius = np.sqrt(c + ccx**2 + ccy**2) if c + ccx**2 + ccy**2 > 0 else 0
        if not 0.25 * min(h, w) < radius < 1.2 * np.hypot(h, w) / 2:
            continue
        inliers = np.abs(np.hypot(px - ccx, py - ccy) - radius) <= INLIER_PX * 1.5
        if best is None or inliers.sum() > best[3].sum():
            best = (ccx, ccy, radius, inliers)
    if best is None or best[3].sum() < 0.15 * n_angles:
        return None
    ccx, ccy, radius, inliers = best
    rr, cc = np.mgrid[0:h, 0:w]
    distance = np.hypot(cc - ccx, rr - ccy) - radius
    beyond, band = distance > 1, (distance < -2) & (distance > -2 - max(4, min(h, w) // 12))

    def sector_of(y, x):
        return np.floor((np.arctan2(y - ccy, x - ccx) + np.pi) / (2 * np.pi) * 48).astype(int) % 48

    seen = np.unique(sector_of(py[inliers], px[inliers]))
    visible = np.unique(sector_of(rr, cc)[np.abs(distance) < 1.5])  # the circle in the image
    if len(seen) < 0.7 * len(visible) or not _consistent(img, distance, sector_of(rr, cc), seen):
        return None
    return beyond if _accept(img, beyond, band, need_flat) else None


def open_field(image, margin_px: float = 1.0, seed: int = 0) -> np.ndarray | None:
    """Boolean (H, W): True inside the collimator's open field (a `margin_px` band inside its
    edge left out too); None when no blade or iris is found."""
    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape
    factor = max(1, int(np.ceil(max(h, w) / WORK_PX)))
    small = image[: h // factor * factor, : w // factor * factor]
    small = small.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
    img = ndimage.gaussian_filter(_normalised(small), 1.0)
    rng = np.random.default_rng(seed)
    k = 3
    shadow = np.zeros(img.shape, bool)
    found = False
    for polarity, need_flat in ((img, False), (1 - img, True)):  # bright, or painted any value
        for turns in range(4):  # each side in turn at the left
            blade = _blade(np.rot90(polarity, turns), rng, k, need_flat)
            if blade is not None:
                shadow |= np.rot90(blade, -turns)
                found = True
        iris = _iris(polarity, rng, k, need_flat)
        if iris is not None:
            shadow |= iris
            found = True
    if not found:
        return None
    margin = max(1, int(round(margin_px / factor)))
    shadow = ndimage.binary_dilation(shadow, iterations=margin)
    full = np.kron(shadow, np.ones((factor, factor), bool))
    out = np.ones((h, w), bool)
    out[: full.shape[0], : full.shape[1]] = ~full
    if full.shape != (h, w):  # the rows/columns the shrink dropped follow their neighbours
        out[full.shape[0] :, :] = out[full.shape[0] - 1 : full.shape[0], :]
        out[:, full.shape[1] :] = out[:, full.shape[1] - 1 : full.shape[1]]
    return out
