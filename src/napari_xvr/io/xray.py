"""X-ray images (DICOM, or PNG/TIFF/NPY with user-given intrinsics) and their preprocessing."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import XvrInputError
from ..geometry import MAX_DETECTOR_PX, Intrinsics
from ..imaging import unit
from ._messages import one_line
from .xray_header import (  # noqa: F401
    _check_geometry,
    _check_offsets,
    _dicom_geometry,
    _float,
    _header_int,
    _header_number,
    _header_pair,
    _in_range,
    _numbers,
    _raw,
    _shown,
)
from .xray_limits import (  # noqa: F401 (re-exported)
    CROSS_SECTIONAL,
    DECODE_BYTES_PER_PX,
    DICOMDIR_SOP_CLASS,
    IMAGE_SUFFIXES,
    MAX_OFFSET_EXTENTS,
    MAX_PIXELS,
    MIN_SIDE_PX,
    PHOTOMETRIC,
    PROJECTION,
    REDUCEFNS,
    SDD_RANGE_MM,
    SPACING_RANGE_MM,
)
from .xray_pixels import (  # noqa: F401
    _check_fragments,
    _check_frame_index,
    _check_pixel_module,
    _decode_error,
    _pixels,
    _refuse_constant,
    _refuse_dicomdir,
    _refuse_slice,
    _transfer_syntax,
)


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
    """'max', 'sum' or a frame index (an int or a string of one, as typed in the CLI's option or
    the widget's field); None or a blank string means 'max'."""
    if reducefn is None or (isinstance(reducefn, str) and not reducefn.strip()):
        return "max"
    if isinstance(reducefn, str) and reducefn.strip().lower() in REDUCEFNS:
        return reducefn.strip().lower()
    try:
        if isinstance(reducefn, bool) or (isinstance(reducefn, float) and not reducefn.is_integer()):
            raise ValueError(reducefn)
        return int(reducefn)
    except (TypeError, ValueError, OverflowError) as err:
        raise XvrInputError(
            f"--reducefn {reducefn!r}: use max, sum or a frame index (0 is the first frame)"
        ) from err


def reduce_frames(frames, reducefn, path=None):
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
    _refuse_dicomdir(path, ds)
    _refuse_slice(path, ds)
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise XvrInputError(
            f"{path}: the DICOM has no pixel data (PixelData (7FE0,0010) is missing: a truncated "
            "file or a non-image object such as a report or DICOMDIR); give an X-ray image"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames = _check_pixel_module(path, ds)
        values, sources = _dicom_geometry(path, ds, overrides)
        pixels = _pixels(path, ds)
    expected = (frames, int(ds.Rows), int(ds.Columns)) if frames > 1 else (int(ds.Rows), int(ds.Columns))
    if pixels.shape != expected:
        raise XvrInputError(
            f"{path}: the decoded pixel data has shape {pixels.shape} but Rows/Columns/"
            f"NumberOfFrames say {expected}; fix the header or give the original file"
        )
    _check_frame_index(path, pixels, reducefn)
    _check_offsets(path, values, sources, *pixels.shape[-2:])

    primary = _float(ds, "PositionerPrimaryAngle")
    orientation = [str(v).strip().upper() for v in (ds.get("PatientOrientation") or [])]
    pf_to_af = bool(orientation == ["P", "F"] and primary is not None and primary < 0)
    if pf_to_af:
        pixels = pixels[..., ::-1]
    pixels = np.ascontiguousarray(pixels, dtype=np.float32)
    image = reduce_frames(pixels, reducefn, path)
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
    if min(pixels.shape[-2:]) < MIN_SIDE_PX or max(pixels.shape[-2:]) > MAX_DETECTOR_PX:
        raise XvrInputError(
            f"{path}: the image is {pixels.shape[-2]} x {pixels.shape[-1]} px; an X-ray must be "
            f"{MIN_SIDE_PX} to {MAX_DETECTOR_PX} px on each side"
        )
    if not np.isfinite(pixels).all():
        raise XvrInputError(f"{path}: the image holds NaN or infinite values; fix the image")
    _refuse_constant(path, pixels)
    _check_frame_index(path, pixels, reducefn)
    image = reduce_frames(pixels, reducefn, path)
    values = {k: v for k, v in overrides.items() if v is not None}
    missing = [flag for key, flag in (("sdd", "--sdd"), ("delx", "--delx")) if key not in values]
    if missing:
        raise XvrInputError(
            f"{path}: a {suffix} image carries no detector geometry; pass {' and '.join(missing)} "
            "(source-to-detector distance in mm, pixel spacing in mm)"
        )
    values.setdefault("dely", values["delx"])
    values.setdefault("x0", 0.0)
    values.setdefault("y0", 0.0)
    _check_geometry(path, values, {})
    height, width = image.shape
    _check_offsets(path, values, {}, height, width)
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


def check_crop(crop: int, height: int, width: int) -> None:
    """A centre crop must leave at least 2 pixels per axis."""
    if crop < 0 or crop >= min(height, width) - 1:
        raise XvrInputError(
            f"--crop {crop}: this {height} x {width} px X-ray allows 0 to "
            f"{min(height, width) - 2} pixels removed per axis"
        )


def crop_intrinsics(intrinsics: Intrinsics, crop: int) -> Intrinsics:
    """Intrinsics of the image after a centre crop of `crop` pixels per axis."""
    if crop <= 0:
        return intrinsics
    check_crop(crop, intrinsics.height, intrinsics.width)
    return intrinsics.with_overrides(height=intrinsics.height - crop, width=intrinsics.width - crop)


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
        check_crop(crop, height, width)
        # the same offsets as torchvision's center_crop, which xvr uses
        top, left = int(round(crop / 2.0)), int(round(crop / 2.0))
        img = img[..., top : top + height - crop, left : left + width - crop]
    img = unit(img)
    if subtract_background:
        background = img.flatten().mode().values.item()
        img = torch.clamp(img - background, -1, 0) + 1
    if linearize:
        img = img + 1
        img = img.max().log() - img.log()
    if img.ndim == 3:
        img = reduce_frames(img, reducefn)
    return img[None, None].contiguous()
