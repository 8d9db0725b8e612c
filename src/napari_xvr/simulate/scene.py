"""What is in a real X-ray besides the CT's anatomy: the collimator's field, objects in the beam
(the table, a ruler, lead L/R markers, a K-wire, a screw) and what the vendor burns in (text, a
digital ruler, electronic shutters).

Objects are placed from the detector's point of view (a pixel and a depth along its ray), so
they are always in the field whatever the pose, and rendered as exact chord lengths
(:mod:`.objects`); annotations are drawn on the stored image (:mod:`napari_xvr.degrade`'s glyphs).
"""

from __future__ import annotations

import numpy as np

from ..degrade import MARKERS, _bitmap, burn_in_text
from ..geometry import Intrinsics
from .objects import Box, Cylinder
from .rays import camera_to_world


def collimator_field(
    shape,
    rng: np.random.Generator,
    margin=(0.04, 0.2),
    max_tilt_deg=15.0,
    edge_px: float = 1.5,
    circle_chance: float = 0.25,
) -> np.ndarray:
    """The open field (float (H, W) in [0, 1], a soft edge): a rectangle with blades `margin`
    (fractions of the side) in from each border, turned up to `max_tilt_deg`, or a circle."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    if rng.uniform() < circle_chance:
        radius = 0.5 * min(h, w) * rng.uniform(0.8, 1.05)
        cy, cx = h / 2 + rng.uniform(-0.04, 0.04) * h, w / 2 + rng.uniform(-0.04, 0.04) * w
        distance = np.hypot(rows - cy, cols - cx) - radius
    else:
        top, bottom, left, right = (rng.uniform(*margin) * s for s in (h, h, w, w))
        cy, cx = (top + h - bottom) / 2, (left + w - right) / 2
        hh, hw = (h - top - bottom) / 2, (w - left - right) / 2
        angle = np.deg2rad(rng.uniform(-max_tilt_deg, max_tilt_deg))
        u = (cols - cx) * np.cos(angle) + (rows - cy) * np.sin(angle)
        v = -(cols - cx) * np.sin(angle) + (rows - cy) * np.cos(angle)
        distance = np.maximum(np.abs(u) - hw, np.abs(v) - hh)
    return np.clip(0.5 - distance / max(edge_px, 1e-6), 0.0, 1.0)


class View:
    """Where things are for one exposure: the pose, the detector, the volume's frame."""

    def __init__(self, pose: np.ndarray, intrinsics: Intrinsics, orientation: str = "AP"):
        self.to_world = camera_to_world(pose, orientation)
        self.intrinsics = intrinsics

    @property
    def source(self) -> np.ndarray:
        return self.to_world[:3, 3]

    def axes(self) -> np.ndarray:
        """World directions of the detector's columns (right), rows (down) and the central ray."""
        r = self.to_world[:3, :3]
        return np.stack([r[:, 0], -r[:, 1], r[:, 2]], axis=1)

    def point(self, row: float, col: float, distance_mm: float) -> np.ndarray:
        """The world point `distance_mm` from the source on the ray through pixel (row, col)."""
        intr = self.intrinsics
        cam = np.array(
            [
                intr.delx * (col - intr.width / 2) + intr.x0,
                -intr.dely * (row - intr.height / 2) + intr.y0,
                intr.sdd,
            ]
        )
        direction = self.to_world[:3, :3] @ (cam / np.linalg.norm(cam))
        return self.source + distance_mm * direction


def body_depths(view: View, corners: np.ndarray) -> tuple[float, float]:
    """Nearest and farthest distance (mm) from the source of the volume box's `corners`."""
    d = np.linalg.norm(corners - view.source, axis=1)
    return float(d.min()), float(d.max())


def table(view: View, corners: np.ndarray, rng: np.random.Generator) -> list[Box]:
    """A carbon-fibre table top under the patient (posterior, world -y) with two aluminium
    rails, as long as the volume and wider than it."""
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    y = lo[1] - rng.uniform(5, 25)
    length = (hi[2] - lo[2]) + 400
    centre_z = (hi[2] + lo[2]) / 2
    half_width = max(hi[0] - lo[0], 300) / 2 + rng.uniform(20, 60)
    thickness = rng.uniform(15, 25)
    parts = [
        Box(
            "carbon",
            (0.0, y - thickness / 2, centre_z),
            (2 * half_width, thickness, length),
            density=rng.uniform(0.15, 0.3),
        )
    ]  # a foam sandwich: low mean density
    for side in (-1, 1):
        parts.append(
            Box("aluminium", (side * (half_width + 5), y - thickness / 2, centre_z), (10.0, 30.0, length))
        )
    return parts


def _letter_boxes(
    letter: str,
    origin: np.ndarray,
    right: np.ndarray,
    down: np.ndarray,
    normal: np.ndarray,
    cell_mm: float,
    depth_mm: float,
) -> list[Box]:
    axes = np.stack([right, down, normal], axis=1)
    boxes = []
    for r, row in enumerate(_bitmap(MARKERS[letter])):
        for c, filled in enumerate(row):
            if filled:
                centre = origin + (c + 0.5) * cell_mm * right + (r + 0.5) * cell_mm * down
                boxes.append(Box("lead", tuple(centre), (cell_mm, cell_mm, depth_mm), axes))
    return boxes


def lead_marker(
    view: View, corners: np.ndarray, rng: np.random.Generator, field: np.ndarray | None
) -> list[Box]:
    """An L or R lead letter (2 mm strokes) on the patient's near skin, in a corner of the field."""
    intr = view.intrinsics
    rows, cols = _open_rows_cols(field, intr)
    row = rng.choice([rows[0] + 0.08 * (rows[1] - rows[0]), rows[1] - 0.2 * (rows[1] - rows[0])])
    col = rng.choice([cols[0] + 0.08 * (cols[1] - cols[0]), cols[1] - 0.2 * (cols[1] - cols[0])])
    near, far = body_depths(view, corners)
    origin = view.point(row, col, near + rng.uniform(0, 20))
    right, down, normal = view.axes().T
    return _letter_boxes(
        "LR"[int(rng.integers(2))], origin, right, down, normal, cell_mm=rng.uniform(2.5, 4.0), depth_mm=1.5
    )


def radiopaque_ruler(
    view: View, corners: np.ndarray, rng: np.random.Generator, field: np.ndarray | None
) -> list[Box]:
    """A ruler on the table: lead ticks every 10 mm (long ones every 50 mm) along one side."""
    intr = view.intrinsics
    rows, cols = _open_rows_cols(field, intr)
    near, far = body_depths(view, corners)
    vertical = rng.uniform() < 0.5
    right, down, normal = view.axes().T
    along, across = (down, right) if vertical else (right, down)
    if vertical:
        at = view.point(
            (rows[0] + rows[1]) / 2,
            cols[0] + rng.uniform(0.05, 0.12) * (cols[1] - cols[0]),
            far - rng.uniform(0, 30),
        )
    else:
        at = view.point(
            rows[1] - rng.uniform(0.05, 0.12) * (rows[1] - rows[0]),
            (cols[0] + cols[1]) / 2,
            far - rng.uniform(0, 30),
        )
    axes = np.stack([along, across, normal], axis=1)
    ticks = []
    for k in range(-15, 16):
        length = 10.0 if k % 5 == 0 else 5.0
        centre = at + 10.0 * k * along + (length / 2) * across
        ticks.append(Box("lead", tuple(centre), (1.0, length, 0.5), axes))
    return ticks


def devices(view: View, corners: np.ndarray, rng: np.random.Generator) -> list[Cylinder]:
    """A K-wire (1.6-2.5 mm steel) and/or a screw (titanium shaft and head) inside the volume's
    central part, in random directions."""
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    centre, extent = (lo + hi) / 2, (hi - lo) / 2
    parts: list[Cylinder] = []
    kinds = [k for k in ("wire", "screw") if rng.uniform() < 0.7] or ["wire"]
    for kind in kinds:
        at = centre + rng.uniform(-0.4, 0.4, 3) * extent
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        if kind == "wire":
            half = rng.uniform(60, 120)
            parts.append(
                Cylinder(
                    "iron",
                    tuple(at - half * direction),
                    tuple(at + half * direction),
                    rng.uniform(0.8, 1.25),
                    density=7.9,
                )
            )
        else:
            half = rng.uniform(15, 25)
            parts.append(
                Cylinder(
                    "titanium",
                    tuple(at - half * direction),
                    tuple(at + half * direction),
                    rng.uniform(2.0, 3.25),
                )
            )
            head = at - half * direction
            parts.append(Cylinder("titanium", tuple(head - 3 * direction), tuple(head), 5.0))
    return parts


def _open_rows_cols(field: np.ndarray | None, intr: Intrinsics) -> tuple[tuple, tuple]:
    """The open field's bounding rows and columns (the whole detector without collimation)."""
    if field is None or not (field > 0.5).any():
        return (0.0, float(intr.height)), (0.0, float(intr.width))
    scale_r, scale_c = intr.height / field.shape[0], intr.width / field.shape[1]
    r, c = np.nonzero(field > 0.5)
    inner = 0.1  # keep away from the blades
    rr = (r.min() * scale_r, (r.max() + 1) * scale_r)
    cc = (c.min() * scale_c, (c.max() + 1) * scale_c)
    return (
        (rr[0] + inner * (rr[1] - rr[0]), rr[1] - inner * (rr[1] - rr[0])),
        (cc[0] + inner * (cc[1] - cc[0]), cc[1] - inner * (cc[1] - cc[0])),
    )


def burn_in(
    stored: np.ndarray, top: int, rng: np.random.Generator, field: np.ndarray | None, monochrome1: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Burned-in text (patient, date) and a digital scale bar at the display's white; returns the
    image and the pixels drawn."""
    canvas = np.zeros(stored.shape, np.float32)
    canvas[0, 0] = 1.0  # burn_in_text draws at the canvas's max
    _, drawn = burn_in_text(
        canvas,
        rng,
        n_lines=int(rng.integers(1, 4)),
        glyph_px=int(rng.integers(1, 3)),
        marker=False,
        within=None if field is None or rng.uniform() < 0.5 else field,
    )
    drawn = drawn | _scale_bar(stored.shape, rng)
    result = stored.copy()
    result[drawn] = 0 if monochrome1 else top
    return result, drawn


def _scale_bar(shape, rng: np.random.Generator) -> np.ndarray:
    """A digital ruler: a line with ticks along the bottom or right border."""
    h, w = shape
    bar = np.zeros(shape, bool)
    if rng.uniform() < 0.5:
        r = h - int(rng.integers(4, 10))
        c0, c1 = int(0.6 * w), int(0.92 * w)
        bar[r, c0:c1] = True
        for c in range(c0, c1 + 1, max(2, (c1 - c0) // 10)):
            bar[r - 3 : r, min(c, w - 1)] = True
    else:
        c = w - int(rng.integers(4, 10))
        r0, r1 = int(0.3 * h), int(0.7 * h)
        bar[r0:r1, c] = True
        for r in range(r0, r1 + 1, max(2, (r1 - r0) // 10)):
            bar[min(r, h - 1), c - 3 : c] = True
    return bar


def electronic_shutter(
    stored: np.ndarray, field: np.ndarray, top: int, monochrome1: bool, rng: np.random.Generator
) -> np.ndarray:
    """Some vendors paint the collimated border: white (as fully attenuated) or black."""
    value = top if rng.uniform() < 0.7 else 0
    if monochrome1:
        value = top - value
    out = stored.copy()
    out[~field] = value
    return out
