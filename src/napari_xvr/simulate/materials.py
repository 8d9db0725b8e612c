"""From CT numbers to what X-rays see: materials, densities, attenuation, the tube's spectrum.

- :func:`hu_to_materials`: each voxel's mass density (g/cm^3) shared between two neighbouring
  reference tissues (air-lung, lung-adipose, adipose-soft tissue, soft tissue-cortical bone) by
  linear interpolation of the CT number between their anchor values, so a voxel of trabecular
  bone is part soft tissue, part bone, as in Schneider's stoichiometric calibration. Density is
  ``1 + HU / 1000`` up to water and rises more slowly above it (bone: 1.92 g/cm^3 at 1900 HU).
- :func:`hu_to_basis`: the same voxels as amounts (g/cm^3) of two basis materials, water and
  cortical bone, whose attenuation curves combine to each tissue's (a least-squares fit over
  20-150 keV, within ~1 % for these tissues: Alvarez and Macovski's two-basis decomposition).
  Two channels to project instead of four, and every energy's attenuation still follows.
- :func:`mass_attenuation`: each tissue's mass attenuation coefficient (cm^2/g, coherent
  scattering included) from ``xraylib``'s NIST compositions, per energy.
- :func:`tube_spectrum`: photons per energy bin of a tungsten tube at a given kVp and filtration,
  from ``spekpy``.
- :func:`detector_absorption`: the share of each energy a CsI scintillator absorbs.

``xraylib`` and ``spekpy`` are the ``[simulate]`` extra: imported only here, only when called.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import XvrInputError

TISSUES = ("lung", "adipose", "soft", "bone")
"""The simulator's materials, in the order of its channels (air is counted as lung)."""

NIST_NAMES = {
    "air": "Air, Dry (near sea level)",
    "lung": "Lung (ICRP)",
    "adipose": "Adipose Tissue (ICRP)",
    "soft": "Tissue, Soft (ICRP)",
    "bone": "Bone, Cortical (ICRP)",
    "water": "Water, Liquid",
    "carbon": "C",  # carbon-fibre table (an element)
    "aluminium": "Al",
    "iron": "Fe",  # stainless steel wires and screws
    "titanium": "Ti",
    "lead": "Pb",  # L/R markers
    "caesium_iodide": "CsI",
}

# (HU, tissue index) anchors: between two anchors a voxel mixes their tissues linearly
ANCHORS_HU = np.array([-1000.0, -600.0, -90.0, 40.0, 1500.0])
ANCHOR_TISSUE = np.array([0, 0, 1, 2, 3])  # air counts as lung tissue of low density
BONE_HU, BONE_DENSITY = 1900.0, 1.92


def hu_to_density(hu: np.ndarray) -> np.ndarray:
    """Mass density (g/cm^3) from CT numbers; never below air's."""
    hu = np.asarray(hu, dtype=np.float32)
    soft = 1.0 + hu / 1000.0
    hard = 1.0 + hu * (BONE_DENSITY - 1.0) / BONE_HU
    return np.maximum(np.where(hu <= 0, soft, hard), 0.0012).astype(np.float32)


def hu_to_materials(hu: np.ndarray) -> np.ndarray:
    """(len(TISSUES), *hu.shape) densities (g/cm^3): each tissue's share of every voxel."""
    hu = np.asarray(hu, dtype=np.float32)
    density = hu_to_density(hu)
    out = np.zeros((len(TISSUES), *hu.shape), dtype=np.float32)
    clipped = np.clip(hu, ANCHORS_HU[0], ANCHORS_HU[-1])
    segment = np.clip(np.searchsorted(ANCHORS_HU, clipped, side="right") - 1, 0, len(ANCHORS_HU) - 2)
    lo, hi = ANCHORS_HU[segment], ANCHORS_HU[segment + 1]
    share_hi = ((clipped - lo) / (hi - lo)).astype(np.float32)
    for tissue in range(len(TISSUES)):
        weight = np.where(ANCHOR_TISSUE[segment] == tissue, 1.0 - share_hi, 0.0) + np.where(
            ANCHOR_TISSUE[segment + 1] == tissue, share_hi, 0.0
        )
        out[tissue] = (weight * density).astype(np.float32)
    return out


BASIS = ("water", "bone")
"""The two basis materials the projector integrates (their mass attenuation curves)."""
FIT_KEV = np.arange(20.0, 151.0, 2.0)


@lru_cache(maxsize=1)
def tissue_basis() -> np.ndarray:
    """(len(TISSUES), 2): each tissue's mass attenuation as amounts of the BASIS materials' (a
    least-squares fit in relative error over 20-150 keV)."""
    basis = np.stack([mass_attenuation(name, FIT_KEV) for name in BASIS], axis=1)  # (E, 2)
    out = []
    for tissue in TISSUES:
        target = mass_attenuation(tissue, FIT_KEV)
        coef, *_ = np.linalg.lstsq(basis / target[:, None], np.ones_like(target), rcond=None)
        out.append(coef)
    return np.asarray(out)


def hu_to_basis(hu: np.ndarray) -> np.ndarray:
    """(2, *hu.shape) amounts (g/cm^3) of water and bone that attenuate as each voxel does
    (a function of the CT number alone: tabulated every HU and interpolated)."""
    hu = np.asarray(hu, dtype=np.float32)
    table_hu = np.arange(ANCHORS_HU[0], max(float(hu.max()), ANCHORS_HU[-1]) + 2.0, 1.0)
    table = np.einsum("t...,tb->b...", hu_to_materials(table_hu), tissue_basis())
    return np.stack([np.interp(hu, table_hu, row).astype(np.float32) for row in table])


def _xraylib():
    try:
        import xraylib
    except ImportError as err:  # pragma: no cover - the [simulate] extra is part of [testing]
        raise XvrInputError(
            "the X-ray simulator needs xraylib and spekpy: pip install 'napari-xvr[simulate]'"
        ) from err
    return xraylib


@lru_cache(maxsize=64)
def _attenuation(name: str, energies: tuple[float, ...]) -> np.ndarray:
    xl = _xraylib()  # CS_Total_CP takes a NIST compound's name, an element or a formula
    return np.array([xl.CS_Total_CP(NIST_NAMES.get(name, name), e) for e in energies])


def mass_attenuation(name: str, energies_kev) -> np.ndarray:
    """Mass attenuation coefficients (cm^2/g, coherent included) of a material at `energies_kev`."""
    return _attenuation(name, tuple(float(e) for e in np.asarray(energies_kev).ravel()))


FORMULA_DENSITY = {"CsI": 4.51}
"""Densities (g/cm^3) of the formulas above that xraylib has no entry for."""


def density_of(name: str) -> float:
    """Nominal density (g/cm^3) of a named material."""
    xl = _xraylib()
    nist = NIST_NAMES.get(name, name)
    if nist in FORMULA_DENSITY:
        return FORMULA_DENSITY[nist]
    if nist in xl.GetCompoundDataNISTList():
        return float(xl.GetCompoundDataNISTByName(nist)["density"])
    return float(xl.ElementDensity(xl.SymbolToAtomicNumber(nist)))


@dataclass(frozen=True)
class Spectrum:
    """Photons per energy bin (relative), bin centres in keV."""

    energies_kev: np.ndarray
    photons: np.ndarray

    @property
    def mean_kev(self) -> float:
        return float((self.energies_kev * self.photons).sum() / self.photons.sum())


@lru_cache(maxsize=32)
def _spectrum(kvp: float, al_mm: float, cu_mm: float, bin_kev: float) -> tuple:
    try:
        import spekpy
    except ImportError as err:  # pragma: no cover
        raise XvrInputError("the X-ray simulator needs spekpy: pip install 'napari-xvr[simulate]'") from err
    spek = spekpy.Spek(kvp=kvp, th=12, dk=bin_kev)
    if al_mm > 0:
        spek.filter("Al", al_mm)
    if cu_mm > 0:
        spek.filter("Cu", cu_mm)
    energies, fluence = spek.get_spectrum()
    keep = (fluence > fluence.max() * 1e-5) & (energies >= 10)
    return tuple(energies[keep]), tuple(fluence[keep] / fluence[keep].sum())


def tube_spectrum(
    kvp: float = 90.0, al_mm: float = 3.0, cu_mm: float = 0.1, bin_kev: float = 1.0
) -> Spectrum:
    """A tungsten-anode spectrum (12 deg anode) after `al_mm` of aluminium and `cu_mm` of copper."""
    if not 40 <= kvp <= 150:
        raise XvrInputError(f"kVp {kvp}: give 40-150 kV")
    energies, photons = _spectrum(float(kvp), float(al_mm), float(cu_mm), float(bin_kev))
    return Spectrum(np.asarray(energies), np.asarray(photons))


def detector_absorption(energies_kev, csi_mm: float = 0.6, fill: float = 0.8) -> np.ndarray:
    """Share of the photons of each energy a CsI scintillator of `csi_mm` (packing `fill`) absorbs."""
    mu = mass_attenuation("caesium_iodide", energies_kev) * density_of("caesium_iodide") * fill
    return 1.0 - np.exp(-mu * csi_mm / 10.0)
