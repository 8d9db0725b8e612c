"""DRR construction for a volume + intrinsics + device (DiffDRR's renderer)."""

from __future__ import annotations

import torch
from diffdrr.drr import DRR

from . import defaults
from .conventions import RENDERERS
from .device import pick_device
from .errors import XvrInputError
from .geometry import Intrinsics


def make_drr(
    subject,
    intrinsics: Intrinsics,
    renderer: str = defaults.reg("renderer"),
    reverse_x_axis: bool = defaults.reg("reverse_x_axis"),
    voxel_shift: float = defaults.reg("voxel_shift"),
    device=None,
    **drr_kwargs,
) -> DRR:
    """A DiffDRR ``DRR`` for `subject` (from :func:`napari_xvr.io.read_volume`) on `device`."""
    if renderer not in RENDERERS:
        raise XvrInputError(f"--renderer {renderer!r}: use one of {', '.join(RENDERERS)}")
    if not 0 <= voxel_shift <= 1:
        raise XvrInputError(
            f"--voxel_shift {voxel_shift}: give a fraction of a voxel in [0, 1] "
            "(0.5 samples voxel centres, DiffDRR's default; 0 is xvr's)"
        )
    if renderer == "fast":  # our slice-wise marcher (napari_xvr.fastdrr), DiffDRR's geometry and API
        from .fastdrr import FastDRR

        drr_kwargs.pop("renderer", None)
        fast = FastDRR(
            subject,
            sdd=intrinsics.sdd,
            height=intrinsics.height,
            delx=intrinsics.delx,
            width=intrinsics.width,
            dely=intrinsics.dely,
            x0=intrinsics.x0,
            y0=intrinsics.y0,
            reverse_x_axis=reverse_x_axis,
            voxel_shift=voxel_shift,
            **drr_kwargs,
        )
        return fast.to(pick_device(device))
    drr = DRR(
        subject,
        sdd=intrinsics.sdd,
        height=intrinsics.height,
        delx=intrinsics.delx,
        width=intrinsics.width,
        dely=intrinsics.dely,
        x0=intrinsics.x0,
        y0=intrinsics.y0,
        reverse_x_axis=reverse_x_axis,
        renderer=renderer,
        voxel_shift=voxel_shift,
        **drr_kwargs,
    )
    return drr.to(pick_device(device))


def set_intrinsics(drr: DRR, intrinsics: Intrinsics) -> DRR:
    """Point `drr` at a new detector geometry (in place) and return it."""
    drr.set_intrinsics_(
        sdd=intrinsics.sdd,
        height=intrinsics.height,
        width=intrinsics.width,
        delx=intrinsics.delx,
        dely=intrinsics.dely,
        x0=intrinsics.x0,
        y0=intrinsics.y0,
    )
    return drr


@torch.no_grad()
def render(drr: DRR, pose) -> torch.Tensor:
    """Render the DRR(s) of `pose` without gradients: (B, 1, H, W) float32."""
    return drr(pose.to(drr.device)).float()
