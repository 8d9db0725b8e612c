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
from ..memory import check_memory
from ._messages import one_line

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".npy", ".jpg", ".jpeg")
#: modalities whose images are cross-sections of a volume, never projections
CROSS_SECTIONAL = ("CT", "MR", "PT", "NM")
#: projection radiography modalities (an image plane in their header does not make them slices)
PROJECTION = ("XA", "RF", "DX", "CR", "MG", "RG", "PX", "IO")
REDUCEFNS = ("max", "sum")
#: the smallest image side accepted (nothing can be registered on fewer pixels)
MIN_SIDE_PX = 8
#: the most pixels (all frames together) decoded from one file: 2 GiB as float32
MAX_PIXELS = 1 << 29
#: bytes decoding frames takes per pixel: the decoded array, its float32 copy and a flipped copy
DECODE_BYTES_PER_PX = 12
#: plausible source-to-detector distances (mm): clinical C-arms are ~900-1300 mm
SDD_RANGE_MM = (10.0, 10000.0)
#: plausible detector pixel spacings (mm per pixel)
SPACING_RANGE_MM = (1e-3, 100.0)
#: the principal point may lie at most this many detector extents from the detector centre
MAX_OFFSET_EXTENTS = 5.0
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
#: PhotometricInterpretation values this reader turns into grey, by SamplesPerPixel
PHOTOMETRIC = {
    1: ("MONOCHROME1", "MONOCHROME2"),
    3: ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT"),
}


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


def _raw(ds, keyword):
    """The element's value as pydicom gives it (None when absent or empty); never raises."""
    if keyword not in ds:
        return None
    try:
        value = ds[keyword].value
    except Exception:  # a value pydicom cannot convert (e.g. text in a DS field)
        try:
            value = ds.get_item(keyword).value
        except Exception:
            return "(unreadable)"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace").strip("\0 ")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) and hasattr(value, "__len__") and len(value) == 0:
        return None
    return value


def _shown(value) -> str:
    """A header value as the messages quote it: one line, DICOM's backslash between values."""
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        return f"'{one_line(str(value), 60)}'"
    return f"'{one_line(chr(92).join(str(v) for v in value), 60)}'"


def _numbers(value) -> list[float] | None:
    items = [value] if isinstance(value, str) or not hasattr(value, "__iter__") else list(value)
    if len(items) == 1 and isinstance(items[0], str) and "\\" in items[0]:
        items = items[0].split("\\")
    try:
        return [float(str(v).strip()) if isinstance(v, str) else float(v) for v in items]
    except (TypeError, ValueError, OverflowError):
        return None


def _float(ds, keyword):
    value = _raw(ds, keyword)
    if value is None:
        return None
    numbers = _numbers(value)
    if not numbers or len(numbers) != 1:
        return None
    return numbers[0] if np.isfinite(numbers[0]) else None


def _header_number(path, ds, keyword, tag, flag, bounds, unit="mm"):
    """A single-valued geometry field: None when absent, else a checked finite number."""
    value = _raw(ds, keyword)
    if value is None:
        return None
    fix = f"fix the tag or pass {flag}"
    numbers = _numbers(value)
    if numbers is None:
        raise XvrInputError(f"{path}: {keyword} {tag} is {_shown(value)}, not a number; {fix}")
    if len(numbers) != 1:
        raise XvrInputError(
            f"{path}: {keyword} {tag} holds {len(numbers)} values ({_shown(value)}); it must be "
            f"one number in {unit}; {fix}"
        )
    _in_range(path, f"{keyword} {tag}", numbers[0], bounds, unit, fix)
    return numbers[0]


def _header_pair(path, ds, keyword, tag, fix):
    """A (row, column) pair of numbers: None when absent; one value means both; else refused."""
    value = _raw(ds, keyword)
    if value is None:
        return None
    numbers = _numbers(value)
    if numbers is None:
        raise XvrInputError(f"{path}: {keyword} {tag} is {_shown(value)}, not numbers; {fix}")
    if len(numbers) == 1:  # one value: square pixels / the same offset on both axes
        numbers = numbers * 2
    if len(numbers) != 2:
        raise XvrInputError(
            f"{path}: {keyword} {tag} holds {len(numbers)} values ({_shown(value)}); it must be "
            f"two numbers (row\\column); {fix}"
        )
    if not all(np.isfinite(numbers)):
        raise XvrInputError(f"{path}: {keyword} {tag} is {_shown(value)}, not finite numbers; {fix}")
    return numbers[0], numbers[1]


def _in_range(path, name, number, bounds, unit, fix):
    lo, hi = bounds
    if not np.isfinite(number) or not lo <= number <= hi:
        where = f"{path}: " if path is not None else ""
        raise XvrInputError(
            f"{where}{name} {number:g} {unit} is outside the plausible range {lo:g}..{hi:g} {unit}; {fix}"
        )


def _check_geometry(path, values: dict, sources: dict) -> None:
    """Every geometry value (header or option) is plausible; `sources` name where each came from."""
    flags = {"sdd": "--sdd", "delx": "--delx", "dely": "--dely", "x0": "--x0", "y0": "--y0"}
    for key, bounds in (("sdd", SDD_RANGE_MM), ("delx", SPACING_RANGE_MM), ("dely", SPACING_RANGE_MM)):
        source = sources.get(key, flags[key])
        fix = (
            f"give a plausible {flags[key]}" if source == flags[key] else f"fix the tag or pass {flags[key]}"
        )
        _in_range(path, source, float(values[key]), bounds, "mm", fix)


def _check_offsets(path, values: dict, sources: dict, height: int, width: int) -> None:
    """The principal point must lie near the detector (DetectorActiveOrigin / --x0 / --y0)."""
    for key, extent in (("x0", width * values["delx"]), ("y0", height * values["dely"])):
        number = float(values[key])
        limit = MAX_OFFSET_EXTENTS * extent
        if not np.isfinite(number) or abs(number) > limit:
            flag = f"--{key}"
            source = sources.get(key, flag)
            fix = f"give a plausible {flag}" if source == flag else f"fix the tag or pass {flag}"
            raise XvrInputError(
                f"{path}: {source} {number:g} mm puts the principal point more than "
                f"{MAX_OFFSET_EXTENTS:g} detector widths ({limit:g} mm) from the detector centre; "
                f"{fix}"
            )


def _header_int(path, ds, keyword, tag, required=True):
    value = _raw(ds, keyword)
    if value is None:
        if required:
            raise XvrInputError(
                f"{path}: {keyword} {tag} is missing, the image header is incomplete; give the "
                "original file (or re-export it from the archive)"
            )
        return None
    numbers = _numbers(value)
    if not numbers or len(numbers) != 1 or not np.isfinite(numbers[0]) or not numbers[0].is_integer():
        raise XvrInputError(f"{path}: {keyword} {tag} is {_shown(value)}, not a whole number; fix the header")
    return int(numbers[0])


def _transfer_syntax(path, ds):
    from pydicom.uid import UID

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None:
        return None
    syntax = UID(str(syntax))
    if not syntax.is_transfer_syntax:
        raise XvrInputError(
            f"{path}: TransferSyntaxUID (0002,0010) {str(syntax)!r} is not a known transfer "
            "syntax; re-export the file as uncompressed DICOM (e.g. gdcmconv --raw)"
        )
    return syntax


def _check_pixel_module(path: Path, ds) -> int:
    """Check the image pixel module against the pixel data before decoding (so a lying header
    is refused without allocating); returns the number of frames."""
    rows = _header_int(path, ds, "Rows", "(0028,0010)")
    columns = _header_int(path, ds, "Columns", "(0028,0011)")
    for keyword, tag, value in (("Rows", "(0028,0010)", rows), ("Columns", "(0028,0011)", columns)):
        if not MIN_SIDE_PX <= value <= MAX_DETECTOR_PX:
            raise XvrInputError(
                f"{path}: {keyword} {tag} is {value}; an X-ray must be {MIN_SIDE_PX} to "
                f"{MAX_DETECTOR_PX} px on each side (is this a thumbnail, or a damaged header?)"
            )
    frames_value = _header_int(path, ds, "NumberOfFrames", "(0028,0008)", required=False)
    frames = 1 if frames_value is None else frames_value
    if frames < 1:
        raise XvrInputError(
            f"{path}: NumberOfFrames (0028,0008) is {frames}; it must be 1 or more, fix the header"
        )
    samples = _header_int(path, ds, "SamplesPerPixel", "(0028,0002)")
    if samples not in PHOTOMETRIC:
        raise XvrInputError(
            f"{path}: SamplesPerPixel (0028,0002) is {samples}; an X-ray has 1 (grey) or 3 "
            "(colour) samples per pixel"
        )
    photometric = _raw(ds, "PhotometricInterpretation")
    if photometric is None:
        raise XvrInputError(
            f"{path}: PhotometricInterpretation (0028,0004) is missing, the image header is "
            "incomplete; give the original file (or set it to MONOCHROME2)"
        )
    photometric = str(photometric).strip().upper()
    if photometric not in PHOTOMETRIC[samples]:
        raise XvrInputError(
            f"{path}: PhotometricInterpretation (0028,0004) is {photometric!r} with "
            f"SamplesPerPixel {samples}; expected {' or '.join(PHOTOMETRIC[samples])} (an indexed "
            "or inconsistent colour image is not an X-ray); convert it to greyscale DICOM"
        )
    total = rows * columns * frames
    if total > MAX_PIXELS:
        raise XvrInputError(
            f"{path}: Rows x Columns x NumberOfFrames = {rows} x {columns} x {frames} is "
            f"{total} pixels, more than the {MAX_PIXELS} this reader decodes; give fewer frames "
            "(e.g. export the frame to register)"
        )
    float_data = next((k for k in ("FloatPixelData", "DoubleFloatPixelData") if k in ds), None)
    bits = _header_int(path, ds, "BitsAllocated", "(0028,0100)")
    allowed = (64,) if float_data == "DoubleFloatPixelData" else (32,) if float_data else (8, 16, 32, 64)
    if bits == 1 and float_data is None:
        raise XvrInputError(
            f"{path}: BitsAllocated (0028,0100) is 1: the pixels are a binary mask (a segmentation or "
            "overlay), not an X-ray; give the X-ray image itself"
        )
    if bits not in allowed:
        raise XvrInputError(
            f"{path}: BitsAllocated (0028,0100) is {bits}; {float_data or 'PixelData'} needs "
            f"{' or '.join(map(str, allowed))}; fix the header"
        )
    if float_data is None:
        stored = _header_int(path, ds, "BitsStored", "(0028,0101)", required=False)
        if stored is not None and not 1 <= stored <= bits:
            raise XvrInputError(
                f"{path}: BitsStored (0028,0101) is {stored} with BitsAllocated {bits}; it must "
                f"be between 1 and {bits}; fix the header"
            )
        representation = _header_int(path, ds, "PixelRepresentation", "(0028,0103)", required=False)
        if representation not in (None, 0, 1):
            raise XvrInputError(
                f"{path}: PixelRepresentation (0028,0103) is {representation}; it must be 0 "
                "(unsigned) or 1 (signed); fix the header"
            )
    syntax = _transfer_syntax(path, ds)
    keyword = float_data or "PixelData"
    if syntax is not None and syntax.is_encapsulated and float_data is None:
        _check_fragments(path, ds, frames)
    else:
        if samples > 1:
            planar = _header_int(path, ds, "PlanarConfiguration", "(0028,0006)", required=False)
            if planar not in (0, 1):
                raise XvrInputError(
                    f"{path}: PlanarConfiguration (0028,0006) is "
                    f"{'missing' if planar is None else planar} for a colour image; it must be "
                    "0 or 1, fix the header"
                )
        # YBR_FULL_422 stores two samples per pixel (the chroma is shared by pixel pairs)
        stored = 2 if samples == 3 and photometric == "YBR_FULL_422" else samples
        frame_bytes = rows * columns * stored * bits // 8
        try:
            length = len(ds[keyword].value)
        except Exception as err:
            raise XvrInputError(
                f"{path}: {keyword} cannot be read ({one_line(err)}); give the complete file"
            ) from err
        expected = frame_bytes * frames
        if length != expected and not (length == expected + 1 and expected % 2):
            held = length / frame_bytes
            if length > expected and length % frame_bytes == 0:
                said = "absent (1 frame)" if frames_value is None else frames_value
                raise XvrInputError(
                    f"{path}: {keyword} holds {int(held)} frames of {rows} x {columns} but "
                    f"NumberOfFrames (0028,0008) is {said}; fix NumberOfFrames to {int(held)} "
                    "(or Rows/Columns if they are wrong)"
                )
            cause = (
                (
                    "the file is probably truncated (or Rows/Columns/NumberOfFrames are wrong); "
                    "give the complete original file"
                )
                if length < expected
                else ("Rows/Columns/BitsAllocated/NumberOfFrames are probably wrong; fix the header")
            )
            raise XvrInputError(
                f"{path}: the pixel data does not fit Rows/Columns/BitsAllocated/NumberOfFrames: "
                f"{keyword} is {length} bytes but Rows {rows} x Columns {columns} x "
                f"SamplesPerPixel {samples} x BitsAllocated {bits} x NumberOfFrames {frames} "
                f"needs {expected} ({held:.3g} frame(s) held); {cause}"
            )
    if frames > 1:
        check_memory(
            total * DECODE_BYTES_PER_PX,
            f"{path}: {frames} frames of {rows}x{columns} px",
            "open a single frame (xvr reads it with --reducefn) or split the file",
        )
    return frames


def _check_fragments(path: Path, ds, frames: int) -> None:
    """Encapsulated (compressed) data must hold at least NumberOfFrames fragments."""
    from pydicom.encaps import parse_basic_offsets, parse_fragments

    try:
        data = ds.PixelData
        offsets = parse_basic_offsets(data)
        items, _ = parse_fragments(data)
    except Exception as err:
        raise XvrInputError(
            f"{path}: the compressed PixelData (7FE0,0010) is damaged or not encapsulated "
            f"({one_line(err)}); give the complete original file"
        ) from err
    fragments = max(items - 1, 0)  # the first item is the basic offset table
    if "ExtendedOffsetTable" in ds:
        try:
            held = len(ds.ExtendedOffsetTable) // 8
        except Exception:
            held = None
    else:
        held = len(offsets) or None
    if fragments < frames or (held is not None and held != frames):
        count = held if held is not None else f"at most {fragments}"
        raise XvrInputError(
            f"{path}: the compressed PixelData holds {count} frames but NumberOfFrames "
            f"(0028,0008) is {frames}; fix NumberOfFrames (or give the complete file)"
        )


def _decode_error(path: Path, ds, err: Exception) -> XvrInputError:
    """A user-facing message for pixel data pydicom could not turn into an array."""
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None)
    name = getattr(syntax, "name", str(syntax))
    if syntax is not None and getattr(syntax, "is_compressed", False):
        try:
            from pydicom.pixels.decoders.base import get_decoder

            available = get_decoder(syntax).is_available
        except NotImplementedError:
            return XvrInputError(
                f"{path}: TransferSyntaxUID (0002,0010) is {name}, which no DICOM pixel decoder "
                "here can read (a video or non-image encoding); export the X-ray as an "
                "uncompressed or JPEG DICOM image"
            )
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
        raise XvrInputError(
            f"{path}: the pixel data holds NaN or infinite values; fix the image "
            "(or replace them with the background value)"
        )
    _refuse_constant(path, pixels)
    return pixels


def _refuse_constant(path: Path, pixels: np.ndarray) -> None:
    """An image with one value everywhere (all zero, say) has nothing to register against."""
    if pixels.size and float(pixels.max()) == float(pixels.min()):
        raise XvrInputError(
            f"{path}: every pixel is {float(pixels.min()):g}; the image is blank, give the X-ray itself"
        )


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


def _dicom_geometry(path: Path, ds, overrides: dict) -> tuple[dict, dict]:
    """sdd/delx/dely/x0/y0 from the header (checked) with `overrides` replacing them, and the
    field or option each value came from."""
    given = {k: v for k, v in overrides.items() if v is not None}
    sources = {k: f"--{k}" for k in given}
    sdd = None
    if "sdd" not in given:
        sdd = _header_number(path, ds, "DistanceSourceToDetector", "(0018,1110)", "--sdd", SDD_RANGE_MM)
        sources["sdd"] = "DistanceSourceToDetector (0018,1110)"
    dely = delx = None
    if "delx" not in given or "dely" not in given:
        for keyword, tag in (("PixelSpacing", "(0028,0030)"), ("ImagerPixelSpacing", "(0018,1164)")):
            pair = _header_pair(path, ds, keyword, tag, "fix the tag or pass --delx and --dely")
            if pair is not None:  # PixelSpacing wins when present, as in xvr
                dely, delx = pair
                sources.setdefault("delx", f"{keyword} {tag}")
                sources.setdefault("dely", f"{keyword} {tag}")
                break
    y0 = x0 = 0.0
    if "x0" not in given or "y0" not in given:
        origin = _header_pair(
            path, ds, "DetectorActiveOrigin", "(0018,7028)", "fix the tag or pass --x0 and --y0"
        )
        if origin is not None:
            y0, x0 = origin
            sources.setdefault("x0", "DetectorActiveOrigin (0018,7028)")
            sources.setdefault("y0", "DetectorActiveOrigin (0018,7028)")
    values = {"sdd": sdd, "delx": delx, "dely": dely, "x0": -x0, "y0": y0}
    values.update(given)
    if values["dely"] is None and values["delx"] is not None:
        values["dely"] = values["delx"]
        sources["dely"] = sources.get("delx", "--delx")
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
    _check_geometry(path, values, sources)
    return values, sources


def _check_frame_index(path: Path, pixels: np.ndarray, reducefn) -> None:
    """A frame index beyond a single-frame image is refused too (it is not silently ignored)."""
    if pixels.ndim == 2 and isinstance(reducefn, int) and reducefn not in (0, -1):
        raise XvrInputError(
            f"{path}: --reducefn {reducefn} is out of range; the file has 1 frame (use 0, max or sum)"
        )


def _refuse_dicomdir(path: Path, ds) -> None:
    sop = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "") or "")
    if sop == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        raise XvrInputError(
            f"{path}: this is a DICOMDIR (an index of a DICOM disc, MediaStorageSOPClassUID "
            f"{DICOMDIR_SOP_CLASS}), not an image; give one of the X-ray files it lists"
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
