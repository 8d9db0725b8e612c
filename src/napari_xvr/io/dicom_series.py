"""DICOM series read as one volume: the series chosen, the slices checked for gaps and
consistency, read through SimpleITK."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import XvrInputError
from ._messages import one_line
from .volume_files import VOXEL_SPACING_MM, is_dicom_file
from .xray import PROJECTION


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
