"""Image formation: from mass thicknesses along the rays to the 12-16 bit image a vendor stores.

The chain, each step one realism factor (:data:`FACTORS`) that can be switched off alone:

1. ``spectrum``: the detected energy through a polychromatic tube spectrum and a CsI detector,
   so beam hardening is real; off: one energy (the spectrum's mean), Beer-Lambert.
2. ``collimator``: lead shutters (a rectangle, turned up to 15 deg, or a circle) leave 0.3 % of
   the beam outside the open field, with a soft edge (scatter from the field still reaches there).
3. ``scatter``: a broad Gaussian kernel of the primary times its attenuation, scaled to a
   median scatter-to-primary ratio over the patient.
4. ``gain``: the anode heel effect and the flat-field's residual gain pattern and column stripes.
5. ``blur``: focal spot and scintillator spread (Gaussian, mm), before pixel integration.
6. ``noise``: Poisson quanta at the given dose per mm^2, plus electronic noise.
7. ``saturation``: the detector clips the direct beam around the patient.
8. log transform (always), then ``processing``: dynamic-range compression (a large-kernel
   unsharp mask with a negative gain), edge enhancement, a sigmoid look-up table and gamma.
9. quantisation to ``bits`` (always), MONOCHROME1 or 2.
Objects and digital annotations are in :mod:`.scene`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .materials import Spectrum, detector_absorption, mass_attenuation, tube_spectrum

FACTORS = (
    "spectrum",
    "scatter",
    "noise",
    "blur",
    "gain",
    "processing",
    "collimator",
    "saturation",
    "annotations",
    "devices",
)
"""The realism factors, each one switch (:class:`Realism`)."""


ANATOMY_LOG = 0.15
"""A pixel whose log image exceeds this (14 % attenuated) shows anatomy, not the direct beam."""


@dataclass(frozen=True)
class Realism:
    """Which realism factors are on."""

    factors: frozenset = frozenset(FACTORS)

    def __post_init__(self):
        unknown = set(self.factors) - set(FACTORS)
        if unknown:
            raise ValueError(f"unknown realism factor(s) {sorted(unknown)}; use {', '.join(FACTORS)}")

    def on(self, name: str) -> bool:
        return name in self.factors

    @classmethod
    def every(cls) -> Realism:
        return cls(frozenset(FACTORS))

    @classmethod
    def none(cls) -> Realism:
        return cls(frozenset())

    @classmethod
    def only(cls, *names: str) -> Realism:
        return cls(frozenset(names))

    @property
    def name(self) -> str:
        missing = [f for f in FACTORS if f not in self.factors]
        if not missing:
            return "all"
        if len(missing) == 1:
            return f"all-but-{missing[0]}"
        return "+".join(f for f in FACTORS if f in self.factors) or "none"


@dataclass(frozen=True)
class Acquisition:
    """The exposure and the detector."""

    kvp: float = 90.0
    al_mm: float = 3.0
    cu_mm: float = 0.1
    photons_per_mm2: float = 3.0e4  # quanta reaching the detector without a patient
    electronic_noise: float = 4.0  # quanta per pixel (standard deviation)
    scatter_to_primary: float = 0.5
    scatter_sigma_mm: float = 40.0
    blur_mm: float = 0.5
    heel_pct: float = 8.0
    heel_angle_deg: float = 0.0  # the anode-cathode direction on the detector
    gain_pct: float = 1.5
    stripes_pct: float = 0.3
    saturation: float = 0.85  # of the direct beam's mean signal
    shutter_leak: float = 0.003  # of the primary, through the lead blades


@dataclass(frozen=True)
class Processing:
    """The vendor's processing of the log image."""

    drc: float = 0.5  # 0: none, 1: the large-scale content removed
    drc_sigma_mm: float = 30.0
    unsharp: float = 1.0
    unsharp_sigma_mm: float = 2.5
    window_pct: tuple[float, float] = (0.5, 99.7)
    contrast: float = 5.0  # sigmoid steepness over the window
    gamma: float = 1.0
    bits: int = 12
    monochrome1: bool = False


@dataclass
class Formed:
    """The stored image and what made it."""

    pixels: np.ndarray  # uint16 (H, W) as stored
    monochrome1: bool
    field: np.ndarray | None  # the open field (bool, H, W), None without collimation
    log_image: np.ndarray  # the line-integral image before processing (H, W), for checks
    info: dict = dataclasses.field(default_factory=dict)


def transmission(
    integrals: dict[str, np.ndarray],
    spectrum: Spectrum,
    polychromatic: bool,
) -> np.ndarray:
    """Detected signal over the unattenuated one, from per-material mass thicknesses (g/cm^2)."""
    names = list(integrals)
    if not polychromatic:
        energy = np.array([spectrum.mean_kev])
        mu = np.stack([mass_attenuation(n, energy)[0] for n in names])
        path = sum(mu[k] * np.asarray(integrals[n], dtype=np.float64) for k, n in enumerate(names))
        return np.exp(-path)
    energies = spectrum.energies_kev
    weight = spectrum.photons * energies * detector_absorption(energies)
    weight = weight / weight.sum()
    mu = np.stack([mass_attenuation(n, energies) for n in names])  # (M, E)
    stack = np.stack([np.asarray(integrals[n], dtype=np.float64) for n in names], axis=-1)
    out = np.zeros(stack.shape[:-1])
    for e in range(len(energies)):  # (H, W) at a time: memory stays one image
        out += weight[e] * np.exp(-(stack @ mu[:, e]))
    return out


def _heel(shape, percent: float, angle_deg: float) -> np.ndarray:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    a = np.deg2rad(angle_deg)
    u = (cols / max(shape[1] - 1, 1) - 0.5) * np.cos(a) + (rows / max(shape[0] - 1, 1) - 0.5) * np.sin(a)
    return 1.0 + percent / 100.0 * u


def _gain(shape, rng: np.random.Generator, percent: float, stripes: float) -> np.ndarray:
    smooth = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=max(shape) / 8)
    smooth /= smooth.std() + 1e-12
    columns = rng.standard_normal(shape[1])[None, :]
    return 1.0 + percent / 100.0 * smooth + stripes / 100.0 * columns


def scatter(
    primary: np.ndarray, field: np.ndarray, spr: float, sigma_px: float, body: np.ndarray
) -> np.ndarray:
    """Scatter from a kernel of the primary times its attenuation (-log), made inside the open
    `field`, scaled so that the median scatter-to-primary ratio over the `body` pixels in the
    field is `spr` (as an anti-scatter grid keeps it: 0.2-1 by anatomy)."""
    source = primary * -np.log(np.clip(primary, 1e-6, 1)) * field
    spread = ndimage.gaussian_filter(source, sigma=sigma_px, mode="constant")
    inside = field > 0.5
    where = body & inside if (body & inside).any() else inside
    if not where.any():
        return np.zeros_like(primary)
    ratio = float(np.median(spread[where] / np.maximum(primary[where], 1e-12)))
    return spread * (spr / ratio if ratio > 0 else 0.0)


def bin_pixels(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over `factor` x `factor` blocks (pixel integration)."""
    if factor == 1:
        return image
    h, w = image.shape[0] // factor, image.shape[1] // factor
    return image[: h * factor, : w * factor].reshape(h, factor, w, factor).mean(axis=(1, 3))


def process(
    log_image: np.ndarray, processing: Processing, pixel_mm: float, on: bool, valid: np.ndarray
) -> np.ndarray:
    """The vendor's processing of a log image to [0, 1] (bone bright); `valid`: pixels that set
    the window (the open field)."""
    img = log_image.astype(np.float64)
    ref = img[valid] if valid.any() else img.ravel()
    if on:
        if processing.drc > 0:
            low = ndimage.gaussian_filter(img, processing.drc_sigma_mm / pixel_mm, mode="nearest")
            img = img - processing.drc * (low - ref.mean())
        if processing.unsharp > 0:
            low = ndimage.gaussian_filter(img, processing.unsharp_sigma_mm / pixel_mm, mode="nearest")
            img = img + processing.unsharp * (img - low)
        ref = img[valid] if valid.any() else img.ravel()
    lo, hi = np.percentile(ref, processing.window_pct if on else (0.0, 100.0))
    x = np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1)
    if on:
        s = 1 / (1 + np.exp(-processing.contrast * (x - 0.5)))
        s0, s1 = 1 / (1 + np.exp(processing.contrast / 2)), 1 / (1 + np.exp(-processing.contrast / 2))
        x = ((s - s0) / (s1 - s0)) ** processing.gamma
    return x


def form_image(
    integrals: dict[str, np.ndarray],
    oversample: int,
    pixel_mm: float,
    acquisition: Acquisition,
    processing: Processing,
    realism: Realism,
    rng: np.random.Generator,
    field: np.ndarray | None = None,
) -> Formed:
    """The stored image from per-material mass thicknesses (g/cm^2) at `oversample` x the
    detector's resolution (`pixel_mm`: the detector's pixel size); `field` is the collimator's
    open field at that resolution (None: no collimation)."""
    spectrum = tube_spectrum(acquisition.kvp, acquisition.al_mm, acquisition.cu_mm)
    primary = transmission(integrals, spectrum, realism.on("spectrum"))
    fine_mm = pixel_mm / oversample
    body = primary < 0.95
    open_field = np.ones(primary.shape) if field is None else field.astype(np.float64)
    signal = primary * (open_field + (1 - open_field) * acquisition.shutter_leak)
    if realism.on("scatter"):  # made in the open field, it spreads under the blades too
        signal = signal + scatter(
            primary, open_field, acquisition.scatter_to_primary, acquisition.scatter_sigma_mm / fine_mm, body
        )
    if realism.on("gain"):
        signal = signal * _heel(signal.shape, acquisition.heel_pct, acquisition.heel_angle_deg)
    if realism.on("blur") and acquisition.blur_mm > 0:
        signal = ndimage.gaussian_filter(signal, acquisition.blur_mm / fine_mm, mode="nearest")
    signal = bin_pixels(signal, oversample)
    open_coarse = bin_pixels(open_field, oversample) > 0.5
    quanta = acquisition.photons_per_mm2 * pixel_mm * pixel_mm
    counts = signal * quanta
    if realism.on("noise"):
        counts = rng.poisson(np.clip(counts, 0, None)).astype(np.float64)
        counts += rng.normal(0, acquisition.electronic_noise, counts.shape)
    if realism.on("gain"):  # the flat field's residual: after the quanta are counted
        counts = counts * _gain(counts.shape, rng, acquisition.gain_pct, acquisition.stripes_pct)
    if realism.on("saturation"):
        counts = np.minimum(counts, acquisition.saturation * quanta)
    log_image = -np.log(np.clip(counts, 0.5, None) / quanta)
    # the vendor sets its window on the anatomy: the open field's attenuated pixels
    anatomy = open_coarse & (log_image > ANATOMY_LOG)
    shown = process(
        log_image,
        processing,
        pixel_mm,
        realism.on("processing"),
        anatomy if anatomy.sum() > 0.05 * anatomy.size else open_coarse,
    )
    top = 2**processing.bits - 1
    stored = np.round(shown * top)
    if processing.monochrome1:
        stored = top - stored
    return Formed(
        stored.astype(np.uint16),
        processing.monochrome1,
        open_coarse if field is not None else None,
        log_image,
        {"mean_kev": spectrum.mean_kev, "quanta_per_pixel": quanta, "bits": processing.bits},
    )
