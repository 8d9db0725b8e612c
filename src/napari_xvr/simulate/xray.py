"""One realistic X-ray of a CT at a pose: rays, materials, objects, image formation, annotations."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..geometry import Intrinsics
from .formation import Acquisition, Processing, Realism, form_image
from .objects import object_line_integrals
from .projector import VoxelGrid, line_integrals
from .rays import detector_rays
from .scene import (
    View,
    burn_in,
    collimator_field,
    devices,
    electronic_shutter,
    lead_marker,
    radiopaque_ruler,
    table,
)
from .volume import BASIS


@dataclass
class SimulatedXray:
    """The stored pixels (uint16, as a DICOM holds them) and how they were made."""

    pixels: np.ndarray
    monochrome1: bool
    bits: int
    field: np.ndarray | None  # the collimator's open field (bool), None without one
    annotated: np.ndarray | None  # pixels the vendor drew on (bool)
    log_image: np.ndarray  # -log(signal / flat) before processing
    info: dict = dataclasses.field(default_factory=dict)

    def bone_bright(self) -> np.ndarray:
        """The image as the X-ray reader shows it (MONOCHROME2: dense is bright), float32."""
        img = self.pixels.astype(np.float32)
        return (img.max() - img) if self.monochrome1 else img


def simulate_xray(
    grid: VoxelGrid,
    pose: np.ndarray,
    intrinsics: Intrinsics,
    rng: np.random.Generator,
    orientation: str = "AP",
    realism: Realism | None = None,
    acquisition: Acquisition | None = None,
    processing: Processing | None = None,
    step_mm: float | None = None,
    oversample: int = 1,
    shutter_chance: float = 0.3,
) -> SimulatedXray:
    """A realistic X-ray of `grid` (:meth:`HUVolume.materials`) at the camera-to-world `pose`.

    `realism` says which factors of :mod:`.formation` and :mod:`.scene` are on (default: all).
    The same `rng` state gives the same image.
    """
    realism = realism or Realism.every()
    acquisition = acquisition or Acquisition()
    processing = processing or Processing()
    pose = np.asarray(pose, dtype=np.float64).reshape(4, 4)
    source, pixels = detector_rays(pose, intrinsics, orientation, oversample)
    amounts = line_integrals(grid, source, pixels, step_mm).double().cpu().numpy() / 10.0  # g/cm^2
    integrals = {name: amounts[k] for k, name in enumerate(BASIS)}
    shape = pixels.shape[:2]
    field = collimator_field(shape, rng) if realism.on("collimator") else None
    view, corners = View(pose, intrinsics, orientation), grid.corners()
    objects: list = []
    if realism.on("devices"):
        objects += [*table(view, corners, rng), *devices(view, corners, rng)]
    if realism.on("annotations"):
        objects += lead_marker(view, corners, rng, field) + radiopaque_ruler(view, corners, rng, field)
    for name, amount in object_line_integrals(source, pixels, objects).items():
        integrals[name] = integrals.get(name, 0) + amount
    pixel_mm = float(np.sqrt(intrinsics.delx * intrinsics.dely))
    formed = form_image(integrals, oversample, pixel_mm, acquisition, processing, realism, rng, field)
    stored, annotated, top = formed.pixels, None, 2**processing.bits - 1
    if realism.on("annotations"):
        stored, annotated = burn_in(stored, top, rng, formed.field, formed.monochrome1)
    if formed.field is not None and rng.uniform() < shutter_chance:
        stored = electronic_shutter(stored, formed.field, top, formed.monochrome1, rng)
    info = {**formed.info, "realism": realism.name, "objects": len(objects)}
    return SimulatedXray(
        stored, formed.monochrome1, processing.bits, formed.field, annotated, formed.log_image, info
    )
