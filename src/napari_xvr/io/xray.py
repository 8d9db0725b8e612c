"""X-ray images (DICOM, or PNG/TIFF/NPY with user-given intrinsics) and their preprocessing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import XvrInputError
from ..geometry import Intrinsics

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".npy", ".jpg", ".jpeg")
REDUCEFNS = ("max", "sum")


@dataclass
class XRay:
    """One X-ray: the 2D image (float32, rows x cols, PF->AF flip applied) and its geometry."""

    image: np.ndarray
    intrinsics: Intrinsics
    path: Path | None = None
    pf_to_af: bool = False
    primary_angle: float | None = None
    secondary_angle: float | None = None
    source_to_patient: float | None = None
    header: dict = field(default_factory=dict)

    @property
    def stem(self) -> str:
        if self.path is None:
            return "xray"
        name = self.path.name
        for suffix in (".dcm", ".dicom", *IMAGE_SUFFIXES):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return name


def _reduce(frames: np.ndarray, reducefn, path) -> np.ndarray:
    if frames.ndim == 2:
        return frames
    if reducefn in (None, "max"):
        return frames.max(axis=0)
    if reducefn == "sum":
        return frames.sum(axis=0)
    try:
        index = int(reducefn)
    except (TypeError, ValueError) as err:
        raise XvrInputError(f"--reducefn {reducefn!r}: use max, sum or a frame index") from err
    if not -frames.shape[0] <= index < frames.shape[0]:
        raise XvrInputError(
            f"{path}: --reducefn {index} is out of range; the file has {frames.shape[0]} frames"
        )
    return frames[index]


def _float(ds, keyword):
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _pair(ds, keyword):
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return a, b


def _read_dicom(path: Path, reducefn, overrides: dict) -> XRay:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as err:
        raise XvrInputError(f"{path}: not a DICOM file (no DICM preamble); give a DICOM X-ray") from err
    except Exception as err:
        raise XvrInputError(f"{path}: the DICOM file is unreadable or truncated ({err})") from err
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise XvrInputError(f"{path}: the DICOM has no pixel data (PixelData tag missing)")
    try:
        pixels = np.asarray(ds.pixel_array, dtype=np.float32)
    except Exception as err:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise XvrInputError(
            f"{path}: cannot decode the pixel data (transfer syntax {syntax}): {err}. "
            "Install pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg and pylibjpeg-rle"
        ) from err
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4) and ds.get("SamplesPerPixel", 1) > 1:
        pixels = pixels[..., :3].mean(axis=-1)
    if ds.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        pixels = pixels.max() - pixels
    if not np.isfinite(pixels).all():
        raise XvrInputError(f"{path}: the pixel data holds NaN or infinite values")

    sdd = _float(ds, "DistanceSourceToDetector")
    spacing = _pair(ds, "PixelSpacing") or _pair(ds, "ImagerPixelSpacing")
    origin = _pair(ds, "DetectorActiveOrigin") or (0.0, 0.0)
    dely, delx = spacing if spacing else (None, None)
    y0, x0 = origin
    values = {"sdd": sdd, "delx": delx, "dely": dely, "x0": -x0, "y0": y0}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values["dely"] is None and values["delx"] is not None:
        values["dely"] = values["delx"]
    if values["sdd"] is None:
        raise XvrInputError(
            f"{path}: DistanceSourceToDetector (0018,1110) is missing; pass --sdd in mm"
        )
    if values["delx"] is None:
        raise XvrInputError(
            f"{path}: neither PixelSpacing (0028,0030) nor ImagerPixelSpacing (0018,1164) is "
            "present; pass --delx (and --dely) in mm/pixel"
        )

    primary = _float(ds, "PositionerPrimaryAngle")
    pf_to_af = bool(
        list(ds.get("PatientOrientation", []) or []) == ["P", "F"]
        and primary is not None
        and primary < 0
    )
    image = _reduce(pixels, reducefn, path)
    if image.ndim != 2:
        raise XvrInputError(f"{path}: the pixel data has shape {pixels.shape}; expected 2D frames")
    if pf_to_af:
        image = image[:, ::-1].copy()
    height, width = image.shape
    intrinsics = Intrinsics(height=height, width=width, **values)
    header = {
        "Modality": str(ds.get("Modality", "")),
        "SOPInstanceUID": str(ds.get("SOPInstanceUID", "")),
        "NumberOfFrames": int(pixels.shape[0]) if pixels.ndim == 3 else 1,
        "TransferSyntaxUID": str(getattr(ds.file_meta, "TransferSyntaxUID", "")),
    }
    return XRay(
        image=np.ascontiguousarray(image, dtype=np.float32),
        intrinsics=intrinsics,
        path=path,
        pf_to_af=pf_to_af,
        primary_angle=primary,
        secondary_angle=_float(ds, "PositionerSecondaryAngle"),
        source_to_patient=_float(ds, "DistanceSourceToPatient"),
        header=header,
    )


def _read_plain(path: Path, reducefn, overrides: dict) -> XRay:
    if path.suffix.lower() == ".npy":
        try:
            pixels = np.load(path).astype(np.float32)
        except Exception as err:
            raise XvrInputError(f"{path}: not a readable .npy array ({err})") from err
    else:
        import imageio.v3 as iio

        try:
            pixels = np.asarray(iio.imread(path), dtype=np.float32)
        except Exception as err:
            raise XvrInputError(f"{path}: not a readable image ({err})") from err
        if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
            pixels = pixels[..., :3].mean(axis=-1)
    image = _reduce(pixels, reducefn, path)
    if image.ndim != 2:
        raise XvrInputError(f"{path}: image of shape {pixels.shape}; expected a 2D image")
    if not np.isfinite(image).all():
        raise XvrInputError(f"{path}: the image holds NaN or infinite values")
    values = {k: v for k, v in overrides.items() if v is not None}
    for key, flag in (("sdd", "--sdd"), ("delx", "--delx")):
        if key not in values:
            raise XvrInputError(f"{path}: a {path.suffix} file carries no geometry; pass {flag}")
    values.setdefault("dely", values["delx"])
    height, width = image.shape
    return XRay(
        image=np.ascontiguousarray(image), intrinsics=Intrinsics(height=height, width=width, **values),
        path=path,
    )


def read_xray(
    path,
    reducefn="max",
    sdd: float | None = None,
    delx: float | None = None,
    dely: float | None = None,
    x0: float | None = None,
    y0: float | None = None,
) -> XRay:
    """Read an X-ray; header geometry is replaced by any of sdd/delx/dely/x0/y0 given."""
    path = Path(path)
    if not path.is_file():
        raise XvrInputError(f"{path}: no such X-ray file")
    overrides = {"sdd": sdd, "delx": delx, "dely": dely, "x0": x0, "y0": y0}
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _read_plain(path, reducefn, overrides)
    return _read_dicom(path, reducefn, overrides)


def crop_intrinsics(intrinsics: Intrinsics, crop: int) -> Intrinsics:
    """Intrinsics of the image after a centre crop of `crop` pixels per axis."""
    if crop <= 0:
        return intrinsics
    return intrinsics.with_overrides(
        height=intrinsics.height - crop, width=intrinsics.width - crop
    )


def preprocess_xray(
    image: np.ndarray | torch.Tensor,
    crop: int = 0,
    subtract_background: bool = False,
    linearize: bool = False,
) -> torch.Tensor:
    """xvr's preprocessing: centre crop, rescale to [0, 1], remove the mode, log-linearize.

    Returns a float32 tensor of shape (1, 1, H, W).
    """
    img = torch.as_tensor(np.asarray(image, dtype=np.float32)).clone()
    if img.ndim != 2:
        raise XvrInputError(f"preprocess: expected a 2D image, got shape {tuple(img.shape)}")
    height, width = img.shape
    if crop:
        if crop < 0 or crop >= min(height, width) - 1:
            raise XvrInputError(f"--crop {crop}: must be between 0 and {min(height, width) - 2}")
        top, left = crop // 2, crop // 2
        img = img[top : top + height - crop, left : left + width - crop]
    img = (img - img.min()) / (img.max() - img.min() + 1e-6)
    if subtract_background:
        background = img.flatten().mode().values.item()
        img = torch.clamp(img - background, -1, 0) + 1
    if linearize:
        img = img + 1
        img = img.max().log() - img.log()
    return img[None, None].contiguous()
