"""npe2 writers: a registration result (``name.json`` + ``name.csv``) and DRR/overlay images.

What they write, napari-xvr reads back: the reader opens ``name.json`` with its trajectory from
``name.csv`` (:func:`napari_xvr.io.result.read_trajectory`).

Overwriting: napari's save dialog has already asked about the file the user named, so that file
is replaced (atomically: a failed write leaves the old one as it was). The ``name.csv`` beside a
result is not something the user named: an existing one is only replaced when it is a trajectory
napari-xvr wrote, never another file that happens to have the name.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from ..errors import XvrInputError, XvrOutputError
from ..imaging import unit_finite
from ..io.atomic import atomic_write_bytes, atomic_write_files


def _target(path, suffix: str, allowed: tuple[str, ...]) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise XvrInputError(f"{path!r}: not a file path; give the file to save to")
    target = Path(os.fspath(path)).expanduser()
    if target.suffix.lower() not in allowed:
        target = target.with_name(target.name + suffix) if target.suffix == "" else target.with_suffix(suffix)
    if target.is_dir():
        raise XvrOutputError(f"could not write {target}: it is a folder; give a file name")
    if target.parent.exists() and not target.parent.is_dir():
        raise XvrOutputError(f"could not write {target}: {target.parent} is a file, not a folder")
    return target


def _is_our_trajectory(csv: Path) -> bool:
    from ..io.result import TRAJECTORY_COLUMNS

    try:
        with csv.open("rb") as handle:
            first = handle.readline(4096).decode("utf-8", "replace").strip()
    except OSError:
        return False
    return first == ",".join(TRAJECTORY_COLUMNS)


def write_result(path: str, data, meta: dict) -> list[str]:
    """Write the result carried by a layer's metadata as `path` (.json) + trajectory CSV.

    ``name.json`` gets the result (poses as 4x4 matrix, ZXY angles and mm) and ``name.csv``
    the optimisation trajectory, written together (all or nothing).
    """
    from ..io.result import TRAJECTORY_COLUMNS, validate_result

    meta = meta if isinstance(meta, dict) else {}
    meta = meta.get("metadata", meta) if isinstance(meta.get("metadata", meta), dict) else {}
    result = meta.get("result")
    target = _target(path, ".json", (".json",))
    if not result or not isinstance(result, dict) or "init_pose" not in result:
        raise XvrInputError(
            f"{target}: this layer carries no registration result; save an X-ray or DRR layer "
            "made by the Register widget or read from a result folder"
        )
    try:
        validate_result(result, target)
        text = json.dumps(result, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        if isinstance(err, XvrInputError):
            raise XvrInputError(f"{err}; the layer's result was not saved") from err
        raise XvrInputError(
            f"{target}: the layer's result cannot be saved as JSON ({err}); it was not saved"
        ) from err
    rows = meta.get("trajectory") or []
    lines = [",".join(TRAJECTORY_COLUMNS)]
    try:
        lines += [",".join(_cell(row.get(k)) for k in TRAJECTORY_COLUMNS) for row in rows]
    except (AttributeError, TypeError, ValueError) as err:
        raise XvrInputError(
            f"{target}: the layer's trajectory is not a list of rows of numbers ({err}); it was not saved"
        ) from err
    csv = target.with_suffix(".csv")
    if csv.exists() and (csv.is_dir() or not _is_our_trajectory(csv)):
        raise XvrOutputError(
            f"could not write {csv}: a file of that name exists and is not a "
            "napari-xvr trajectory; it was kept, save under another name"
        )
    atomic_write_files({csv: ("\n".join(lines) + "\n").encode("utf-8"), target: text.encode("utf-8")})
    return [str(target), str(csv)]


def _cell(value) -> str:
    return "" if value is None else repr(float(value))


def _image(data, target: Path) -> np.ndarray:
    """The 2D (or RGB) image a layer holds; the last frame of a stack."""
    try:
        array = np.asarray(data[0] if isinstance(data, list) and data else data)  # multiscale: level 0
    except Exception as err:
        raise XvrInputError(f"{target}: this layer's data is not an image array ({err})") from err
    while array.ndim > 3 or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        array = array[-1]  # the last frame of a time series
    if array.ndim < 2 or array.size == 0 or min(array.shape[:2]) < 1:
        raise XvrInputError(
            f"{target}: this layer is not an image (shape {array.shape}); select "
            "a DRR, overlay or X-ray layer"
        )
    if array.dtype.kind not in "biuf":
        raise XvrInputError(
            f"{target}: this layer holds {array.dtype} data; only real-valued images are saved"
        )
    return array


def write_image(path: str, data, meta: dict) -> list[str]:
    """Write a DRR/overlay layer as an 8-bit PNG (min-max scaled) or a float32 .npy/.tif."""
    import imageio.v3 as iio

    target = _target(path, ".png", (".png", ".npy", ".tif", ".tiff"))
    array = _image(data, target)
    suffix = target.suffix.lower()
    buffer = io.BytesIO()
    if suffix == ".npy":
        np.save(buffer, array.astype(np.float32))
        payload = buffer.getvalue()
    elif suffix in (".tif", ".tiff"):
        payload = iio.imwrite("<bytes>", array.astype(np.float32), extension=".tif")
    else:
        img = unit_finite(array.astype(np.float64))
        payload = iio.imwrite("<bytes>", (img * 255).round().astype(np.uint8), extension=".png")
    atomic_write_bytes(target, payload)
    return [str(target)]
