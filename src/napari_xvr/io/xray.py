"""X-ray images (DICOM, or PNG/TIFF/NPY with user-given intrinsics) and their preprocessing."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import XvrInputError
from ..geometry import Intrinsics
from ._messages import one_line

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".npy", ".jpg", ".jpeg")
#: modalities whose images are cross-sections of a volume, never projections
CROSS_SECTIONAL = ("CT", "MR", "PT", "NM")
#: projection radiography modalities (an image plane in their header does not make them slices)
PROJECTION = ("XA", "RF", "DX", "CR", "MG", "RG", "PX", "IO")
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
    #: all frames (F, H, W) of a multi-frame file, PF->AF flip applied; None for one frame
    frames: np.ndarray | None = None
    reducefn: str | int | None = "max"

    def preprocessed(
        self, crop: int = 0, subtract_background: bool = False, linearize: bool = False
    ) -> torch.Tensor:
        """The (1, 1, H, W) image the registration compares against, as xvr makes it.

        A multi-frame X-ray is preprocessed as a stack and reduced afterwards (xvr's order).
        """
        if self.frames is not None:
            return preprocess_xray(self.frames, crop, subtract_background, linearize, self.reducefn)
        return preprocess_xray(self.image, crop, subtract_background, linearize)

    @property
    def stem(self) -> str:
        return "xray" if self.path is None else xray_stem(self.path)


def xray_stem(path) -> str:
    """The name of an X-ray's result: its file name without the image suffix, never empty.

    A file named only by its suffix (``.dcm``) keeps its name with the dot spelled out
    (``_dcm``), so that its result can never be the output folder itself.
    """
    name = Path(path).name
    for suffix in (".dcm", ".dicom", *IMAGE_SUFFIXES):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)] or name.replace(".", "_")
            break
    return name if name not in ("", ".", "..") else name.replace(".", "_") or "xray"


def check_reducefn(reducefn) -> str | int:
    """'max', 'sum' or a frame index (an int or a string of one); None means 'max'."""
    if reducefn is None:
        return "max"
    if isinstance(reducefn, str) and reducefn.strip().lower() in REDUCEFNS:
        return reducefn.strip().lower()
    try:
        return int(reducefn)
    except (TypeError, ValueError) as err:
        raise XvrInputError(
            f"--reducefn {reducefn!r}: use max, sum or a frame index (0 is the first frame)"
        ) from err


def _reduce(frames, reducefn, path=None):
    """Collapse the leading frame axis of a (F, H, W) array or tensor; 2D passes through."""
    if frames.ndim == 2:
        return frames
    reducefn = check_reducefn(reducefn)
    if reducefn == "max":
        return frames.max(axis=0) if isinstance(frames, np.ndarray) else frames.amax(dim=0)
    if reducefn == "sum":
        return frames.sum(axis=0) if isinstance(frames, np.ndarray) else frames.sum(dim=0)
    count = frames.shape[0]
    if not -count <= reducefn < count:
        where = f"{path}: " if path is not None else ""
        raise XvrInputError(
            f"{where}--reducefn {reducefn} is out of range; the file has {count} frames "
            f"(use 0..{count - 1}, max or sum)"
        )
    return frames[reducefn]


def _float(ds, keyword):
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _pair(ds, keyword):
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    items = [value] if isinstance(value, str) or not hasattr(value, "__iter__") else list(value)
    try:
        numbers = [float(v) for v in items]
    except (TypeError, ValueError):
        return None
    if len(numbers) == 1:  # one value: square pixels / the same offset on both axes
        numbers = numbers * 2
    if len(numbers) != 2 or not all(np.isfinite(numbers)):
        return None
    return numbers[0], numbers[1]


def _decode_error(path: Path, ds, err: Exception) -> XvrInputError:
    """A user-facing message for pixel data pydicom could not turn into an array."""
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None)
    name = getattr(syntax, "name", str(syntax))
    if syntax is not None and getattr(syntax, "is_compressed", False):
        try:
            from pydicom.pixels.decoders.base import get_decoder

            available = get_decoder(syntax).is_available
        except Exception:
            available = False
        if not available:
            return XvrInputError(
                f"{path}: no decoder is installed for its transfer syntax {name}; install "
                "pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg and pylibjpeg-rle "
                "(or decompress the file, e.g. with gdcmconv --raw)"
            )
        return XvrInputError(
            f"{path}: the {name} pixel data cannot be decoded, the file may be truncated or "
            f"corrupt ({one_line(err)}); give the complete file"
        )
    return XvrInputError(
        f"{path}: the pixel data does not fit Rows/Columns/BitsAllocated/NumberOfFrames, the file "
        f"is probably truncated ({one_line(err)}); give the complete file"
    )


def _pixels(path: Path, ds) -> np.ndarray:
    """Decoded frames (H, W) or (F, H, W) as float32, grey, MONOCHROME2 (bright = dense)."""
    try:
        pixels = np.asarray(ds.pixel_array, dtype=np.float32)
    except Exception as err:
        raise _decode_error(path, ds, err) from err
    if int(ds.get("SamplesPerPixel", 1) or 1) > 1 and pixels.shape[-1] in (3, 4):
        pixels = pixels[..., :3].mean(axis=-1)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1":
        pixels = pixels.max() - pixels
    if not np.isfinite(pixels).all():
        raise XvrInputError(f"{path}: the pixel data holds NaN or infinite values; fix the image")
    _refuse_constant(path, pixels)
    return pixels


def _refuse_constant(path: Path, pixels: np.ndarray) -> None:
    """An image with one value everywhere (all zero, say) has nothing to register against."""
    if pixels.size and float(pixels.max()) == float(pixels.min()):
        raise XvrInputError(f"{path}: every pixel is {float(pixels.min()):g}; the image is blank, give "
                            "the X-ray itself")


def _refuse_slice(path: Path, ds) -> None:
    """A CT/MR/PET slice passed as the X-ray: say to give volumes with -v."""
    modality = str(ds.get("Modality", "") or "").strip().upper()
    plane = "ImageOrientationPatient" in ds and "ImagePositionPatient" in ds
    if modality in CROSS_SECTIONAL or (plane and modality not in PROJECTION):
        kind = f"a {modality} slice" if modality else "a cross-sectional slice (it has an image plane)"
        raise XvrInputError(
            f"{path}: Modality {modality or '(none)'} is {kind}, not an X-ray projection; pass "
            "CT/MR volumes with -v (a slice or its series folder) and X-ray images (XA, RF, DX, "
            "CR...) as XRAY"
        )


def _read_dicom(path: Path, reducefn, overrides: dict) -> XRay:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
    except InvalidDicomError as err:
        raise XvrInputError(
            f"{path}: not a DICOM file (no DICM marker at byte 128); give a DICOM X-ray, or a "
            "PNG/TIFF/NPY image with --sdd and --delx"
        ) from err
    except Exception as err:
        raise XvrInputError(
            f"{path}: the DICOM file is unreadable or truncated ({one_line(err)}); give the complete file"
        ) from err
    if len(ds) == 0:
        raise XvrInputError(
            f"{path}: the DICOM file ends after its file meta header (truncated?); give the complete file"
        )
    _refuse_slice(path, ds)
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise XvrInputError(
            f"{path}: the DICOM has no pixel data (PixelData (7FE0,0010) is missing: a truncated "
            "file or a non-image object such as a report or DICOMDIR); give an X-ray image"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pixels = _pixels(path, ds)

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
            f"{path}: DistanceSourceToDetector (0018,1110) is missing or not a number; "
            "pass --sdd (source-to-detector distance in mm)"
        )
    if values["delx"] is None:
        raise XvrInputError(
            f"{path}: neither PixelSpacing (0028,0030) nor ImagerPixelSpacing (0018,1164) holds "
            "two numbers; pass --delx (and --dely) in mm per pixel"
        )

    primary = _float(ds, "PositionerPrimaryAngle")
    orientation = [str(v).strip().upper() for v in (ds.get("PatientOrientation") or [])]
    pf_to_af = bool(orientation == ["P", "F"] and primary is not None and primary < 0)
    if pixels.ndim == 3 and int(ds.get("NumberOfFrames", 1) or 1) == 1 and pixels.shape[0] != 1:
        raise XvrInputError(f"{path}: the pixel data has shape {pixels.shape}; expected 2D frames")
    if pf_to_af:
        pixels = pixels[..., ::-1]
    pixels = np.ascontiguousarray(pixels, dtype=np.float32)
    image = _reduce(pixels, reducefn, path)
    height, width = image.shape
    intrinsics = Intrinsics(height=height, width=width, **values)
    header = {
        "Modality": str(ds.get("Modality", "")),
        "SOPInstanceUID": str(ds.get("SOPInstanceUID", "")),
        "NumberOfFrames": int(pixels.shape[0]) if pixels.ndim == 3 else 1,
        "TransferSyntaxUID": str(getattr(ds.file_meta, "TransferSyntaxUID", "")),
        "PhotometricInterpretation": str(ds.get("PhotometricInterpretation", "")),
        "PatientOrientation": orientation,
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
        frames=pixels if pixels.ndim == 3 else None,
        reducefn=reducefn,
    )


def _read_plain(path: Path, reducefn, overrides: dict) -> XRay:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            pixels = np.load(path, allow_pickle=False).astype(np.float32)
        except Exception as err:
            raise XvrInputError(f"{path}: not a readable .npy array ({one_line(err)})") from err
    else:
        import imageio.v3 as iio

        try:
            pixels = np.asarray(iio.imread(path), dtype=np.float32)
        except Exception as err:
            raise XvrInputError(
                f"{path}: not a readable {suffix} image, truncated or corrupt ({one_line(err)})"
            ) from err
        channels_last = pixels.ndim == 3 and pixels.shape[-1] in (2, 3, 4)
        if channels_last and (suffix not in (".tif", ".tiff") or pixels.shape[0] > 4):
            # grey+alpha keeps the grey channel; colour is averaged
            pixels = pixels[..., 0] if pixels.shape[-1] == 2 else pixels[..., :3].mean(axis=-1)
    if pixels.ndim not in (2, 3):
        raise XvrInputError(f"{path}: image of shape {pixels.shape}; expected a 2D image or frames")
    if not np.isfinite(pixels).all():
        raise XvrInputError(f"{path}: the image holds NaN or infinite values; fix the image")
    _refuse_constant(path, pixels)
    image = _reduce(pixels, reducefn, path)
    values = {k: v for k, v in overrides.items() if v is not None}
    missing = [flag for key, flag in (("sdd", "--sdd"), ("delx", "--delx")) if key not in values]
    if missing:
        raise XvrInputError(
            f"{path}: a {suffix} image carries no detector geometry; pass {' and '.join(missing)} "
            "(source-to-detector distance in mm, pixel spacing in mm)"
        )
    values.setdefault("dely", values["delx"])
    height, width = image.shape
    return XRay(
        image=np.ascontiguousarray(image, dtype=np.float32),
        intrinsics=Intrinsics(height=height, width=width, **values),
        path=path,
        frames=np.ascontiguousarray(pixels) if pixels.ndim == 3 else None,
        reducefn=reducefn,
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
    """Read an X-ray; header geometry is replaced by any of sdd/delx/dely/x0/y0 given.

    DICOM (any transfer syntax pydicom can decode, single or multi-frame) carries its own
    geometry; PNG/TIFF/NPY/JPEG need at least `sdd` and `delx`.  A multi-frame image is reduced
    by `reducefn`: 'max', 'sum' or a frame index.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise XvrInputError(f"{path} is a folder; give one X-ray file (or use --pattern for folders)")
    if not path.is_file():
        raise XvrInputError(f"{path}: no such X-ray file; check the path")
    reducefn = check_reducefn(reducefn)
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
    reducefn: str | int | None = None,
) -> torch.Tensor:
    """xvr's preprocessing: centre crop, rescale to [0, 1], remove the mode, log-linearize.

    `image` is (H, W), or (F, H, W) frames that are preprocessed together and then reduced by
    `reducefn` ('max' when None), as xvr does.  Returns a float32 tensor of shape (1, 1, H, W).
    """
    if isinstance(image, torch.Tensor):
        img = image.detach().to("cpu", torch.float32).clone()
    else:
        img = torch.as_tensor(np.asarray(image, dtype=np.float32)).clone()
    if img.ndim not in (2, 3):
        raise XvrInputError(f"preprocess: expected a 2D image or (F, H, W) frames, got {tuple(img.shape)}")
    height, width = img.shape[-2:]
    if crop:
        if crop < 0 or crop >= min(height, width) - 1:
            raise XvrInputError(f"--crop {crop}: must be between 0 and {min(height, width) - 2}")
        # the same offsets as torchvision's center_crop, which xvr uses
        top, left = int(round(crop / 2.0)), int(round(crop / 2.0))
        img = img[..., top : top + height - crop, left : left + width - crop]
    img = (img - img.min()) / (img.max() - img.min() + 1e-6)
    if subtract_background:
        background = img.flatten().mode().values.item()
        img = torch.clamp(img - background, -1, 0) + 1
    if linearize:
        img = img + 1
        img = img.max().log() - img.log()
    if img.ndim == 3:
        img = _reduce(img, reducefn)
    return img[None, None].contiguous()
