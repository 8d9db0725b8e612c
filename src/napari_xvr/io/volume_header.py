"""A volume file's header checked before its voxels are read: NIfTI, NRRD/MHA text headers and
ITK's reading, with errors that name the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import XvrInputError
from ._messages import one_line
from .dicom_series import _quiet_itk
from .volume_files import MAX_VOXELS, file_suffix


def _nifti_precheck(path: Path, what: str):
    """Header checks of a NIfTI (dimensions) before the data is read; returns the nibabel image."""
    import nibabel as nib

    logger = nib.imageglobals.logger
    quiet = logger.disabled
    logger.disabled = True  # its header "fixes" would be printed to stderr (the CLI prints one line)
    try:
        img = nib.load(str(path))
    except Exception as err:
        raise XvrInputError(f"{path}: not a readable NIfTI {what} ({one_line(err)})") from err
    finally:
        logger.disabled = quiet
    shape = _check_header_shape(path, what, img.shape, "dim")
    header = img.header
    try:
        dtype = header.get_data_dtype()
    except Exception as err:
        raise XvrInputError(f"{path}: the {what}'s datatype is not readable ({one_line(err)})") from err
    _check_dtype(path, what, dtype, "datatype")
    pixdim = _raw_pixdim(path, header)[1 : 1 + min(len(img.shape), 3)]
    bad = [(i + 1, v) for i, v in enumerate(pixdim) if not np.isfinite(v) or v == 0]
    if bad:  # ITK silently makes such a spacing 1 mm, whatever the sform says
        axis, value = bad[0]
        raise XvrInputError(
            f"{path}: the {what}'s header has pixdim[{axis}] = {value:g}, not a voxel size in mm; "
            "fix the header's spacing (e.g. re-save it with the scanner's voxel size)"
        )
    for code, fields in (
        ("qform_code", ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z")),
        ("sform_code", ("srow_x", "srow_y", "srow_z")),
    ):
        values = np.concatenate([np.ravel(np.asarray(header[f], dtype=float)) for f in fields])
        if int(header[code]) > 0 and not np.isfinite(values).all():
            raise XvrInputError(
                f"{path}: the {what}'s header {code.split('_')[0]} ({', '.join(fields)}) holds NaN "
                "or infinite numbers; fix the header's orientation/origin"
            )
    if file_suffix(path) == ".nii":
        offset = int(header.get("vox_offset", 352) or 352)
        expected = offset + int(np.prod(img.shape, dtype=np.int64)) * dtype.itemsize
        size = path.stat().st_size
        if size < expected:
            raise XvrInputError(
                f"{path}: the {what} file is truncated ({size} of {expected} bytes for its header's "
                f"shape {shape}); give the complete file"
            )
    return img


def _raw_pixdim(path: Path, header) -> np.ndarray:
    """pixdim as stored in the file (nibabel silently turns a 0 into 1 when it loads a header)."""
    import gzip
    import struct

    try:
        opener = gzip.open if file_suffix(path) == ".nii.gz" else open
        with opener(path, "rb") as handle:
            head = handle.read(348)
        for order in "<>":
            if len(head) == 348 and struct.unpack(f"{order}i", head[:4])[0] == 348:
                return np.asarray(struct.unpack(f"{order}8f", head[76:108]), dtype=float)
    except (OSError, EOFError, struct.error):
        pass
    return np.asarray(header["pixdim"], dtype=float)  # NIfTI-2, or unreadable here (scanned later)


def _check_header_shape(path: Path, what: str, shape, field: str) -> tuple[int, ...]:
    """A header's shape without trailing unit axes: 3D at most and of a size this reader loads."""
    shape = tuple(int(s) for s in shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 3:
        raise XvrInputError(
            f"{path}: the {what} is {len(shape)}D with shape {shape}; give a single 3D image "
            "(split the channels or time points first)"
        )
    _check_voxel_count(path, what, shape, field)
    return shape


def _check_voxel_count(path: Path, what: str, shape, field: str) -> None:
    shape = tuple(int(s) for s in shape)
    if any(s < 1 for s in shape):
        raise XvrInputError(
            f"{path}: the {what}'s header ({field}) gives shape {shape} with an empty axis; give a "
            "complete 3D image"
        )
    count = int(np.prod(shape, dtype=np.float64))
    if count > MAX_VOXELS:
        raise XvrInputError(
            f"{path}: the {what}'s header ({field}) claims {' x '.join(map(str, shape))} = {count} "
            f"voxels, more than the {MAX_VOXELS} this reader loads; crop or downsample the "
            "volume (or fix a damaged header)"
        )


def _check_dtype(path: Path, what: str, dtype, field: str) -> None:
    dtype = np.dtype(dtype)
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise XvrInputError(
            f"{path}: the {what}'s voxels are {dtype} ({field}); give a scalar (integer or "
            "float) image, e.g. a CT in Hounsfield units"
        )


#: header fields of NRRD / MetaImage files that hold spacing, origin or direction numbers
_TEXT_GEOMETRY = {
    "nrrd": ("spacings", "space directions", "space origin", "thicknesses", "axis mins", "axis maxs"),
    "meta": (
        "elementspacing",
        "elementsize",
        "offset",
        "origin",
        "position",
        "transformmatrix",
        "orientation",
        "rotation",
        "centerofrotation",
    ),
}


def _text_header_check(path: Path, what: str) -> None:
    """NaN/inf in an NRRD or MetaImage header's geometry (ITK silently turns them into 1 or 0)."""
    import re

    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError as err:
        raise XvrInputError(f"{path}: cannot open the {what} ({one_line(err)})") from err
    kind = "nrrd" if file_suffix(path) in (".nrrd", ".nhdr") else "meta"
    text = head.split(b"\n\n", 1)[0] if kind == "nrrd" else head
    for raw in text.decode("latin-1").splitlines():
        if kind == "meta" and raw.strip().lower().startswith("elementdatafile"):
            break
        key, sep, value = raw.partition("=" if kind == "meta" else ":")
        if not sep or key.strip().lower() not in _TEXT_GEOMETRY[kind]:
            continue
        if re.search(r"(?i)\b(nan|inf|infinity)\b", value):
            raise XvrInputError(
                f"{path}: the {what}'s header field '{key.strip()}' is {one_line(value.strip(), 80)!r}, "
                "not finite numbers; fix the header"
            )


def _itk_precheck(path: Path, what: str) -> None:
    """Header checks of an NRRD/MetaImage (size, type, components) before the voxels are read."""
    import SimpleITK as sitk

    _text_header_check(path, what)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        with _quiet_itk():
            reader.ReadImageInformation()
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise XvrInputError(
            f"{path}: cannot read this {what}'s header, the file is damaged or its data file is "
            f"missing ({one_line(lines[-1] if lines else err)}); give the complete file"
        ) from err
    _check_header_shape(path, what, reader.GetSize(), "sizes")
    components = int(reader.GetNumberOfComponents())
    pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    if components != 1 or "complex" in pixel.lower():
        raise XvrInputError(
            f"{path}: the {what}'s voxels are {pixel} with {components} components; give a scalar "
            "(single-component, real) 3D image"
        )


def _nifti_scan(path: Path, img, what: str) -> None:
    """Stream the NIfTI's voxel bytes once: fail if the file is truncated (ITK silently pads
    it) or if float voxels are NaN/inf (ITK silently turns them into 0)."""
    import gzip
    import zlib

    header = img.header
    dtype = header.get_data_dtype()
    offset = int(header.get("vox_offset", 352) or 352)
    expected = int(np.prod(img.shape, dtype=np.int64)) * dtype.itemsize
    floating = np.issubdtype(dtype, np.floating)
    opener = gzip.open if file_suffix(path) == ".nii.gz" else open
    received, bad, chunk = 0, 0, (1 << 22) - (1 << 22) % dtype.itemsize
    try:
        with opener(path, "rb") as handle:
            handle.read(offset)
            while received < expected:
                block = handle.read(min(chunk, expected - received))
                if not block:
                    break
                usable = len(block) - len(block) % dtype.itemsize
                if floating and usable:
                    bad += int((~np.isfinite(np.frombuffer(block[:usable], dtype))).sum())
                received += len(block)
    except (EOFError, OSError, zlib.error) as err:
        raise XvrInputError(
            f"{path}: the {what} file is truncated or corrupt ({one_line(err)}); give the complete file"
        ) from err
    if received < expected:
        raise XvrInputError(
            f"{path}: the {what} file is truncated ({received} of {expected} voxel bytes); "
            "give the complete file"
        )
    if bad:
        raise XvrInputError(
            f"{path}: the {what} holds {bad} NaN or infinite voxels; replace them "
            "(e.g. with the background value) before registering"
        )
