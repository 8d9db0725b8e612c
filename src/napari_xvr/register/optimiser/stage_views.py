"""What each scale of a registration compares: the detector at that scale, the X-ray's
valid pixels, the similarity's windows and the views (one X-ray, or several in a joint run)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from diffdrr.pose import RigidTransform, convert
from torch.nn.functional import interpolate

from ...errors import XvrInputError
from ...geometry import Intrinsics, pose_to_zxy
from ...io.xray import XRay, crop_intrinsics
from ...render import set_intrinsics
from ..masks.fov import explained_pixels
from ..masks.masking import stage_mask, valid_mask
from ..options import RegistrationOptions
from .lm import LMView
from .similarity import Similarity, soft_equalize, standardize

MIN_STAGE_PX = 16  # the coarsest detector: below this the NCC patches see nothing


def stage_intrinsics(full: Intrinsics, scale: float, crop: int) -> Intrinsics:
    """Detector of a stage: `scale` is relative to the uncropped X-ray, as in xvr."""
    factor = (full.height + crop) / (scale * full.height)
    return full.rescaled(factor)


def check_stages(options: RegistrationOptions, intrinsics: Intrinsics, where="the X-ray") -> None:
    """Refuse, before any work, scales that leave the coarsest detector under 16 pixels."""
    full = crop_intrinsics(intrinsics, options.crop)
    scale = max(s for s, _ in options.scale_list())
    coarse = stage_intrinsics(full, scale, options.crop)
    if min(coarse.height, coarse.width) < max(MIN_STAGE_PX, options.patch_size):
        raise XvrInputError(
            f"{where}: --scales {options.scales} shrinks its {full.height} x {full.width} px "
            f"detector to {coarse.height} x {coarse.width} px at scale {scale:g}; the coarsest "
            f"stage needs at least {max(MIN_STAGE_PX, options.patch_size)} px: give smaller "
            "scales (e.g. --scales 4,2,1)"
        )


def check_view(
    drr, pose: RigidTransform, options: RegistrationOptions, intrinsics: Intrinsics, where="the X-ray"
) -> None:
    """Refuse a start whose DRR (at the coarsest scale) is blank or flat: the volume is not in view.

    Such a start has nothing to register to, and the similarity of a flat image is noise.
    """
    full = crop_intrinsics(intrinsics, options.crop)
    coarse = stage_intrinsics(full, max(s for s, _ in options.scale_list()), options.crop)
    matrix = pose.matrix.to(drr.device, torch.float32)
    set_intrinsics(drr, coarse)
    with torch.no_grad():
        image = drr(RigidTransform(matrix)).double()
    peak = float(image.abs().max()) if image.numel() else 0.0
    spread = float(image.std()) if image.numel() > 1 else 0.0
    if not (math.isfinite(peak) and math.isfinite(spread)) or peak <= 0 or spread <= 1e-6 * peak:
        rot, xyz = pose_to_zxy(pose)
        what = "blank" if not peak > 0 else "flat"
        raise XvrInputError(
            f"{where}: the DRR at the initial pose (rot {_fmt(rot)} deg, xyz {_fmt(xyz)} mm) is "
            f"{what}: the volume is not in this X-ray's field of view. Check the initial pose "
            "(--rot/--xyz, the DICOM header or the model), --orientation and the intrinsics "
            "(--sdd, --delx, --dely, --x0, --y0)"
        )


def _fmt(values) -> str:
    return ",".join(f"{v + 0.0:.4g}" for v in values)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _params(pose: RigidTransform, options: RegistrationOptions):
    rot, xyz = pose.convert(options.parameterization, options.convention)
    return (torch.nn.Parameter(rot.detach().clone()), torch.nn.Parameter(xyz.detach().clone()))


def _pose(rot, xyz, options: RegistrationOptions) -> RigidTransform:
    if options.parameterization == "euler_angles":
        return convert(rot, xyz, parameterization="euler_angles", convention=options.convention)
    return convert(rot, xyz, parameterization=options.parameterization)


def _preparer(size: tuple[int, int], equalize: bool, valid: torch.Tensor | None = None):
    """The transform applied to the X-ray and every DRR at one stage. With `equalize`, images
    are brought to the stage's `size` first, then equalized ranking only the stage's `valid`
    pixels (what the similarity compares), so that a collimator's border or text left out of
    the comparison does not squeeze the anatomy's range."""
    if not equalize:
        return lambda x: standardize(x, size)
    mask = None if valid is None else valid[0, 0] > 0.5

    def prepare(x):
        if tuple(x.shape[-2:]) != tuple(size):
            x = interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        return standardize(soft_equalize(x, valid=mask))

    return prepare


def _leave_out(
    similarity: Similarity,
    valid: np.ndarray | None,
    intr: Intrinsics,
    scale: float,
    device,
    explained: torch.Tensor | None = None,
) -> int:
    """Set the stage's mask on `similarity` (the X-ray's valid pixels, and those the CT can
    explain); returns the stage's pixels that count."""
    if valid is None and explained is None:
        similarity.leave_out(None)
        return intr.height * intr.width
    stage_valid = explained if valid is None else stage_mask(valid, (intr.height, intr.width)).to(device)
    assert stage_valid is not None  # valid or explained is given (both None returned above)
    if explained is not None:
        stage_valid = stage_valid & explained.to(device)
    similarity.leave_out(stage_valid)
    windows = similarity.weight("windows")
    assert windows is not None  # leave_out(stage_valid) set the weights
    if not windows.any():
        raise EmptyStage(
            f"--xray_mask: at scale {scale:g} ({intr.height} x {intr.width} px) every "
            f"{similarity.patch_size} x {similarity.patch_size} window touches a left-out pixel "
            f"({100 * (1 - float(stage_valid.float().mean())):.0f} % of the X-ray is left out: "
            "collimated, annotated or beyond the CT's ends): give smaller "
            "scales (e.g. --scales 4,2,1) or pass --xray_mask off"
        )
    return int(stage_valid.sum())


class EmptyStage(XvrInputError):
    """At one scale, every similarity window touches a left-out pixel: that scale is skipped
    (an error only when no scale is left)."""


MIN_EXPLAINED = 0.1
"""The CT's field of view is not used at a stage where it would leave less than this share of
the X-ray (a start far off, whose rays miss the CT)."""


def _xray_mask(img: torch.Tensor, options: RegistrationOptions) -> np.ndarray | None:
    """The X-ray's valid pixels under `options.xray_mask` (None: every pixel counts)."""
    if options.xray_mask == "off":
        return None
    valid = valid_mask(img[0, 0].detach().cpu().double().numpy())
    if not valid.any():
        raise XvrInputError(
            f"--xray_mask {options.xray_mask} leaves no pixel of the X-ray to "
            "compare (it is "
            "constant or saturated everywhere): check the image, or pass "
            "--xray_mask off"
        )
    return valid


def _row(stage, itr, pose, similarity, elapsed, lrs, start) -> dict:
    rot, xyz = pose_to_zxy(pose)
    return {
        "stage": stage,
        "itr": itr,
        "r1": rot[0],
        "r2": rot[1],
        "r3": rot[2],
        "tx": xyz[0],
        "ty": xyz[1],
        "tz": xyz[2],
        "similarity": similarity,
        "time": elapsed,
        "lr_rot": lrs[0],
        "lr_xyz": lrs[1],
        "start": start,
    }


@dataclass
class _View:
    """One X-ray of a registration: its preprocessed image, detector, valid pixels, similarity
    and, in a joint registration, where its camera sits relative to the optimised (first) one."""

    xray: XRay
    img: torch.Tensor
    full: Intrinsics
    valid: np.ndarray | None
    similarity: Similarity
    relative: torch.Tensor | None = None  # (4, 4): this view's pose = pose @ relative

    def pose(self, pose: RigidTransform) -> RigidTransform:
        if self.relative is None:
            return pose
        return RigidTransform(pose.matrix @ self.relative.to(pose.matrix))


def _views(xrays: list[XRay], relatives, options, preprocessing, device, init_only) -> list[_View]:
    views = []
    for index, xray in enumerate(xrays):
        img = xray.preprocessed(options.crop, preprocessing.subtract_background, preprocessing.linearize).to(
            device, torch.float32
        )
        relative = None
        if index and relatives is not None:
            relative = torch.as_tensor(np.asarray(relatives[index]), dtype=torch.float32, device=device)
        views.append(
            _View(
                xray,
                img,
                crop_intrinsics(xray.intrinsics, options.crop),
                None if init_only else _xray_mask(img, options),
                Similarity(options.patch_size, options.sigma, options.similarity_beta).to(device),
                relative,
            )
        )
    return views


def _stage_views(
    views: list[_View], drr, scale: float, options, device, pose: RigidTransform, faces: list
) -> tuple[list, int]:
    """Every view's :class:`LMView` at one scale, and the pixels that enter the similarity: with
    the CT's cut `faces`, only those whose rays at `pose` stay clear of them (:mod:`.masks.fov`).
    One view renders with the detector set on `drr` here; several set their own per render."""
    stage, pixels = [], 0
    for view in views:
        view.similarity.set_sigma(options.fine_sigma if scale <= 1 else options.sigma)
        intr = stage_intrinsics(view.full, scale, options.crop)
        explained = None
        if faces:
            set_intrinsics(drr, intr)
            explained = explained_pixels(drr, view.pose(pose), faces)
            if explained is not None and float(explained.float().mean()) < MIN_EXPLAINED:
                explained = None
        pixels += _leave_out(view.similarity, view.valid, intr, scale, device, explained)
        prep = _preparer((intr.height, intr.width), options.equalize, view.similarity.weight("pixels"))
        stage.append(
            LMView(prep(view.img), prep, view.similarity, intr if len(views) > 1 else None, view.relative)
        )
    set_intrinsics(drr, stage_intrinsics(views[0].full, scale, options.crop))
    return stage, pixels
