"""An X-ray DICOM's geometry read from its header (distances, spacings, offsets), each value
checked, with errors that name the file, the tag and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import XvrInputError
from ._messages import one_line
from .xray_limits import MAX_OFFSET_EXTENTS, SDD_RANGE_MM, SPACING_RANGE_MM


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
