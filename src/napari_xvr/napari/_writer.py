"""npe2 writers: a registration result (result.json + trajectory.csv) and DRR/overlay images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import XvrInputError


def write_result(path: str, data, meta: dict) -> list[str]:
    """Write the result carried by a layer's metadata as `path` (.json) + trajectory CSV.

    ``name.json`` gets the result (poses as 4x4 matrix, ZXY angles and mm) and ``name.csv``
    the optimisation trajectory, both written atomically.
    """
    from ..io.atomic import atomic_write_text
    from ..register.result import TRAJECTORY_COLUMNS

    result = meta.get("metadata", meta).get("result")
    if not result:
        raise XvrInputError(
            f"{path}: this layer carries no registration result; save an X-ray or DRR layer "
            "made by the Register widget or read from a result folder"
        )
    meta = meta.get("metadata", meta)
    target = Path(path)
    if target.suffix.lower() != ".json":
        target = target.with_suffix(".json")
    rows = meta.get("trajectory") or []
    lines = [",".join(TRAJECTORY_COLUMNS)]
    lines += [",".join(_cell(row.get(k)) for k in TRAJECTORY_COLUMNS) for row in rows]
    csv = target.with_suffix(".csv")
    atomic_write_text(csv, "\n".join(lines) + "\n")
    atomic_write_text(target, json.dumps(result, indent=2) + "\n")
    return [str(target), str(csv)]


def _cell(value) -> str:
    return "" if value is None else repr(float(value))


def write_image(path: str, data, meta: dict) -> list[str]:
    """Write a DRR/overlay layer as an 8-bit PNG (min-max scaled) or a float32 .npy/.tif."""
    import imageio.v3 as iio

    target = Path(path)
    array = np.asarray(data)
    if array.ndim == 3 and array.shape[-1] not in (3, 4):
        array = array[-1]  # the last frame of a time series
    suffix = target.suffix.lower()
    if suffix == ".npy":
        np.save(target, array.astype(np.float32))
    elif suffix in (".tif", ".tiff"):
        iio.imwrite(target, array.astype(np.float32))
    else:
        if suffix != ".png":
            target = target.with_suffix(".png")
        img = array.astype(np.float64)
        img = (img - img.min()) / (img.max() - img.min() + 1e-12)
        iio.imwrite(target, (img * 255).round().astype(np.uint8))
    return [str(target)]
