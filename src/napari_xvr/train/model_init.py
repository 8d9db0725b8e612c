"""`xvr register model`: a trained regressor gives registration its first pose."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffdrr.pose import RigidTransform

from ..errors import XvrInputError
from ..geometry import Intrinsics, pose_from_zxy, pose_to_zxy
from ..io.xray import XRay, crop_intrinsics, preprocess_xray
from ..register.similarity import standardize


def to_model_detector(img: torch.Tensor, intrinsics: Intrinsics, spec: dict) -> torch.Tensor:
    """Resample an X-ray (1, 1, H, W) to the model's detector (sdd, delx, height, centred).

    The image is first re-projected to the model's source-to-detector distance and a pixel size
    that keeps its pixel count, then centre-cropped to a square and resized to the model height.
    """
    from diffdrr.utils import resample
    from torch.nn.functional import interpolate
    from torchvision.transforms.functional import center_crop

    height, width = img.shape[-2:]
    side = min(height, width)
    if abs(intrinsics.delx - intrinsics.dely) > 1e-3 * intrinsics.delx:
        scale = intrinsics.dely / intrinsics.delx  # make pixels square first (rows resampled)
        img = interpolate(img, size=(max(2, round(height * scale)), width), mode="bilinear",
                          antialias=True, align_corners=False)
        height, side = img.shape[-2], min(img.shape[-2], width)
    new_delx = spec["delx"] * spec["height"] / side
    img = resample(img, intrinsics.sdd, intrinsics.delx, intrinsics.x0, intrinsics.y0,
                   spec["sdd"], new_delx, 0.0, 0.0)
    img = center_crop(img, [side, side])
    return standardize(img, (spec["height"], spec["height"]))


def antipode(pose: RigidTransform) -> RigidTransform:
    """The C-arm turned 180 degrees (primary angle) about the same isocentre."""
    rot, xyz = pose_to_zxy(pose)
    rot[0] = (rot[0] + 360.0) % 360.0 - 180.0
    return pose_from_zxy(rot, xyz)


@dataclass
class ModelInitializer:
    """Predict each X-ray's pose with a trained regressor (ours or xvr's checkpoint)."""

    checkpoint: Path
    volume: Path | None = None
    warp: Path | None = None
    invert: bool = False
    antipodal: bool = False
    reverse_x_axis: bool = True
    crop: int = 0
    subtract_background: bool = False
    linearize: bool = False
    device: str | None = None
    name = "model"
    choices: list = field(default_factory=list)

    def __post_init__(self):
        from ..device import pick_device
        from .checkpoint import load_model

        self._device = pick_device(self.device)
        self.model, self.spec, ckpt = load_model(self.checkpoint, self._device)
        self.date = str(ckpt.get("date", ""))
        self._warp = None
        if self.warp is not None:
            if self.volume is None:
                raise XvrInputError("--warp needs the volume (-v) the transform was computed for")
            from .warp import reframe, volume_centre_ras

            self._warp = reframe(self.warp, self.spec["frame_center_ras"], volume_centre_ras(self.volume),
                                 self.invert)
        elif self.invert:
            raise XvrInputError("--invert needs a transform: pass it with --warp")
        self._drr = None

    @property
    def orientation(self) -> str:
        return self.spec["orientation"]

    def model_input(self, xray: XRay) -> torch.Tensor:
        img = preprocess_xray(xray.image, self.crop, self.subtract_background, self.linearize)
        x = to_model_detector(img, crop_intrinsics(xray.intrinsics, self.crop), self.spec)
        if bool(self.spec["reverse_x_axis"]) != bool(self.reverse_x_axis):
            x = x.flip(-1)  # the model saw DRRs mirrored relative to this X-ray
        return x.to(self._device)

    @torch.no_grad()
    def __call__(self, xray: XRay) -> RigidTransform:
        x = self.model_input(xray)
        pose = self.model(x)
        if self.antipodal:
            pose = self._pick(x, [pose, antipode(pose.cpu()).to(self._device)])
        if self._warp is not None:
            pose = pose.compose(self._warp.to(pose.matrix.device))
        return RigidTransform(pose.matrix.detach().cpu())

    def _pick(self, x: torch.Tensor, poses: list[RigidTransform]) -> RigidTransform:
        """The candidate whose DRR (model detector) is most similar to the X-ray."""
        from ..io.volume import read_volume
        from ..register.similarity import Similarity
        from ..render import make_drr

        if self.volume is None:
            raise XvrInputError("--antipodal needs the volume (-v) to compare both candidates")
        if self._drr is None:
            subject = read_volume(self.volume, orientation=self.orientation)
            h = self.spec["height"]
            intr = Intrinsics(self.spec["sdd"], h, h, self.spec["delx"], self.spec["delx"])
            self._drr = make_drr(subject, intr, reverse_x_axis=bool(self.spec["reverse_x_axis"]),
                                 device=self._device)
        sim = Similarity()
        size = tuple(x.shape[-2:])
        scores = []
        for pose in poses:
            world = pose if self._warp is None else pose.compose(self._warp.to(pose.matrix.device))
            scores.append(float(sim(x, standardize(self._drr(world), size))))
        best = max(range(len(poses)), key=lambda i: scores[i])
        self.choices.append({"scores": scores, "antipode": bool(best == 1)})
        return poses[best]

    def describe(self) -> dict:
        return {
            "type": "model",
            "ckptpath": str(Path(self.checkpoint).resolve()),
            "date": self.date,
            "model_name": self.spec["model_name"],
            "warp": None if self.warp is None else str(Path(self.warp).resolve()),
            "invert": self.invert,
            "antipodal": self.antipodal,
        }
