"""`xvr register model`: a trained regressor gives registration its first pose."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffdrr.pose import RigidTransform

from ..errors import XvrInputError
from ..geometry import Intrinsics
from ..io.xray import XRay, crop_intrinsics, preprocess_xray
from ..register.optimiser.similarity import standardize


def image_x0(intrinsics: Intrinsics, reverse_x_axis: bool) -> float:
    """The principal point's column offset (mm) as the image's columns see it.

    ``intrinsics.x0`` is DiffDRR's (the DICOM DetectorActiveOrigin column negated).  DiffDRR puts
    an unflipped detector's columns against its x axis, so an offset of ``x0`` moves the image
    content by ``-x0``: re-centring it with ``diffdrr.utils.resample`` takes the DICOM value,
    ``-x0``, which is what xvr 0.1.0 always passes.  A mirrored detector
    (``reverse_x_axis``) sees the offset mirrored too and takes ``x0`` itself.
    """
    return float(intrinsics.x0) if reverse_x_axis else -float(intrinsics.x0)


def to_model_detector(
    img: torch.Tensor, intrinsics: Intrinsics, spec: dict, reverse_x_axis: bool = False
) -> torch.Tensor:
    """Resample an X-ray (1, 1, H, W) to the model's detector (sdd, delx, height, centred).

    The image is first re-projected to the model's source-to-detector distance and a pixel size
    that keeps its pixel count and a centred principal point, then centre-cropped to a square
    and resized to the model height.  `reverse_x_axis` is the renderer convention the X-ray's
    columns follow (it sets the sign of the principal-point shift, see :func:`image_x0`).
    """
    from diffdrr.utils import resample
    from torch.nn.functional import interpolate
    from torchvision.transforms.functional import center_crop

    height, width = img.shape[-2:]
    side = min(height, width)
    if abs(intrinsics.delx - intrinsics.dely) > 1e-3 * intrinsics.delx:
        scale = intrinsics.dely / intrinsics.delx  # make pixels square first (rows resampled)
        img = interpolate(
            img,
            size=(max(2, round(height * scale)), width),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        height, side = img.shape[-2], min(img.shape[-2], width)
    new_delx = spec["delx"] * spec["height"] / side
    img = resample(
        img,
        intrinsics.sdd,
        intrinsics.delx,
        image_x0(intrinsics, reverse_x_axis),
        intrinsics.y0,
        spec["sdd"],
        new_delx,
        0.0,
        0.0,
    )
    img = center_crop(img, [side, side])
    return standardize(img, (spec["height"], spec["height"]))


def antipode(pose: RigidTransform) -> RigidTransform:
    """xvr's antipodal pose: ZXY angles (a, b, c) -> (180 deg - a, -b, c), same translation.

    The view from the far side with the patient's left and right exchanged, i.e. what a
    regressor confuses with `pose` on a near-symmetric anatomy (batched).
    """
    from diffdrr.pose import convert

    rot, xyz = pose.convert("euler_angles", "ZXY")
    sign = torch.tensor([-1.0, -1.0, 1.0], dtype=rot.dtype, device=rot.device)
    shift = torch.tensor([torch.pi, 0.0, 0.0], dtype=rot.dtype, device=rot.device)
    return convert(rot * sign + shift, xyz, parameterization="euler_angles", convention="ZXY")


@dataclass
class ModelInitializer:
    """Predict each X-ray's pose with a trained regressor (ours or xvr's checkpoint).

    `reverse_x_axis` is the registration renderer's convention; None (default) takes the
    checkpoint's.  When it differs from the checkpoint's, the X-ray is mirrored for the model.
    """

    checkpoint: Path
    volume: Path | None = None
    warp: Path | None = None
    invert: bool = False
    antipodal: bool = False
    reverse_x_axis: bool | None = None
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
        if self.reverse_x_axis is None:
            self.reverse_x_axis = bool(self.spec["reverse_x_axis"])
        self._warp = None
        if self.warp is not None:
            if self.volume is None:
                raise XvrInputError("--warp needs the volume (-v) the transform was computed for")
            from .warp import reframe, volume_centre_ras

            self._warp = reframe(
                self.warp, self.spec["frame_center_ras"], volume_centre_ras(self.volume), self.invert
            )
        elif self.invert:
            raise XvrInputError("--invert needs a transform: pass it with --warp")
        self._drr = None

    @property
    def orientation(self) -> str:
        return self.spec["orientation"]

    def conventions(self) -> dict:
        """The checkpoint's flip and orientation (the renderer follows them unless told)."""
        return {"reverse_x_axis": self.reverse_x_axis, "orientation": self.orientation}

    @property
    def mirrored(self) -> bool:
        """Whether the X-ray is mirrored for the model (renderer and checkpoint disagree)."""
        return bool(self.spec["reverse_x_axis"]) != bool(self.reverse_x_axis)

    def model_input(self, xray: XRay) -> torch.Tensor:
        img = preprocess_xray(xray.image, self.crop, self.subtract_background, self.linearize)
        x = to_model_detector(
            img, crop_intrinsics(xray.intrinsics, self.crop), self.spec, bool(self.reverse_x_axis)
        )
        if self.mirrored:
            x = x.flip(-1)  # the model saw DRRs mirrored relative to this X-ray
        return x.to(self._device)

    @torch.no_grad()
    def __call__(self, xray: XRay) -> RigidTransform:
        x = self.model_input(xray)
        pose = self.model(x)
        if self._warp is not None:
            pose = pose.compose(self._warp.to(pose.matrix.device))
        if self.antipodal:  # as xvr: the antipode of the pose in the CT's frame
            pose = self._pick(x, [pose, antipode(pose)])
        return RigidTransform(pose.matrix.detach().cpu())

    def _pick(self, x: torch.Tensor, poses: list[RigidTransform]) -> RigidTransform:
        """The candidate whose DRR (model detector) is most similar to the X-ray."""
        from ..io.volume import read_volume
        from ..register.optimiser.similarity import Similarity
        from ..render import make_drr

        if self.volume is None:
            raise XvrInputError("--antipodal needs the volume (-v) to compare both candidates")
        if self._drr is None:
            subject = read_volume(self.volume, orientation=self.orientation)
            h = self.spec["height"]
            intr = Intrinsics(self.spec["sdd"], h, h, self.spec["delx"], self.spec["delx"])
            self._drr = make_drr(
                subject, intr, reverse_x_axis=bool(self.spec["reverse_x_axis"]), device=self._device
            )
        sim = Similarity()
        size = (int(x.shape[-2]), int(x.shape[-1]))
        scores = []
        for pose in poses:
            scores.append(float(sim(x, standardize(self._drr(pose), size))))
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
