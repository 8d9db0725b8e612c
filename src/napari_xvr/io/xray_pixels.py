"""An X-ray DICOM's pixel data checked before and while it is decoded: the pixel module,
compressed fragments, constant or cross-sectional images, DICOMDIRs and frame indices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import XvrInputError
from ..geometry import MAX_DETECTOR_PX
from ..memory import check_memory
from ._messages import one_line
from .xray_header import _header_int, _raw
from .xray_limits import (
    CROSS_SECTIONAL,
    DECODE_BYTES_PER_PX,
    DICOMDIR_SOP_CLASS,
    MAX_PIXELS,
    MIN_SIDE_PX,
    PHOTOMETRIC,
    PROJECTION,
)


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
