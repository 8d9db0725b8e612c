"""A tracked sequence on disk: ``poses.csv``, ``track.json`` and ``frames/<NNNN>/`` results.

:class:`TrackWriter` writes a track folder, the ``read_*`` functions read one back;
:mod:`.track_many` runs the tracker from files into such folders.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from ...errors import XvrInputError
from ...geometry import pose_from_matrix, pose_to_dict, pose_to_zxy
from ...io.atomic import atomic_write_files
from ...io.jsonfile import read_json
from ...io.result import RegistrationResult, read_result, write_result
from ..checks.trust import SEVERITY
from .shard import gather_brief, outcome
from .track import FrameDone, TrackDone, TrackState

TRACK_VERSION = 1
MATRIX_COLUMNS = tuple(f"m{i}{j}" for i in range(3) for j in range(4))
_FRAME_POSE = ("frame", "name", "r1", "r2", "r3", "tx", "ty", "tz", *MATRIX_COLUMNS)
POSE_COLUMNS = (*_FRAME_POSE, "similarity", "verdict", "predicted_mtre_mm", "iterations", "seconds")
SMOOTHED_COLUMNS = (*_FRAME_POSE, "predicted_mtre_mm", "shift_mm", "measured")
SMOOTHED_FILE = "poses_smoothed.csv"
TRACK_FILES = ("track.json", "poses.csv", "frames")


@dataclass(frozen=True)
class FrameWritten:
    path: Path  # frames/<NNNN> (inside the folder being built; it moves with it)
    index: int
    result: object


@dataclass(frozen=True)
class TrackWritten:
    path: Path  # the output folder, in its final place
    frames: list  # FrameWritten of every frame, in order
    stopped: bool
    next_frame: int | None
    smoothed: object = None  # the run's SmoothedTrack (written to poses_smoothed.csv), or None


def gather_tracks(tracks: Sequence[TrackWritten]) -> list[TrackWritten]:
    """Every rank's tracks (in the planned order, on every rank) under torchrun, each frame's
    result reduced to its verdict (:func:`.shard.outcome`); in a single process `tracks`."""
    return gather_brief(tracks, lambda t: dataclasses.replace(t, frames=[outcome(f) for f in t.frames]))


def frame_folder(root, index: int) -> Path:
    return Path(root) / "frames" / f"{index:04d}"


def check_output(outpath, overwrite: bool = False) -> Path:
    """Refuse, before any work, an output that holds a track (without `overwrite`) or anything
    else (always: nothing but a track folder is ever replaced)."""
    path = Path(outpath).expanduser()
    if path.exists() and not path.is_dir():
        raise XvrInputError(f"-o {path}: is a file; give a folder for the tracked sequence")
    if path.is_dir() and any(path.iterdir()):
        if not any((path / name).exists() for name in TRACK_FILES):
            raise XvrInputError(
                f"-o {path}: the folder holds other files; give a new or empty "
                "folder for the tracked sequence"
            )
        if not overwrite:
            raise XvrInputError(
                f"-o {path}: already holds a tracked sequence; pass --overwrite "
                "to replace it, or choose another output folder"
            )
    return path


def _pose_columns(pose) -> dict:
    """A pose's columns: ZXY degrees + mm and the 3x4 matrix."""
    pose = np.asarray(pose, dtype=np.float64)
    rot, xyz = pose_to_zxy(pose_from_matrix(pose))
    return {
        **dict(zip(("r1", "r2", "r3"), rot.tolist(), strict=True)),
        **dict(zip(("tx", "ty", "tz"), xyz.tolist(), strict=True)),
        **{col: float(pose[int(col[1]), int(col[2])]) for col in MATRIX_COLUMNS},
    }


def pose_row(index: int, name: str, result, seconds: float) -> dict:
    """One line of poses.csv: the final pose as ZXY degrees + mm and as the 3x4 matrix."""
    verdict = (result.verdict or {}).get("status", "")
    predicted = (result.checks.get("uncertainty") or {}).get("predicted_mtre_mm")
    return {
        "frame": index,
        "name": name,
        **_pose_columns(result.pose),
        "similarity": math.nan if result.similarity is None else float(result.similarity),
        "verdict": verdict,
        "predicted_mtre_mm": math.nan if predicted is None else predicted,
        "iterations": int(result.iterations),
        "seconds": float(seconds),
    }


def smoothed_rows(smoothed, names: dict) -> list[dict]:
    """poses_smoothed.csv's lines: per frame its smoothed pose, the predicted mTRE from its
    smoothed covariance, how far smoothing moved it (mTRE, mm) and whether its own pose entered."""
    return [
        {
            "frame": frame,
            "name": names[frame],
            **_pose_columns(pose),
            "predicted_mtre_mm": float(predicted),
            "shift_mm": float(shift),
            "measured": int(measured),
        }
        for frame, pose, predicted, shift, measured in zip(
            smoothed.frames,
            smoothed.poses,
            smoothed.predicted_mtre_mm,
            smoothed.shift_mm,
            smoothed.measured,
            strict=True,
        )
    ]


def poses_csv(rows: list[dict], columns: tuple = POSE_COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    return out.getvalue()


class TrackWriter:
    """Writes a tracked sequence into `folder` (the one being built): a result folder per
    frame, then poses.csv and track.json rewritten together, so they always agree."""

    def __init__(self, folder: Path, header: dict, saveimg: bool = False):
        self.folder, self.header, self.saveimg = Path(folder), header, saveimg
        self.rows: list[dict] = []
        self.summaries: list[dict] = []
        self.written: list[FrameWritten] = []

    def frame(self, event: FrameDone, name: str) -> FrameWritten:
        target = frame_folder(self.folder, event.index)
        result = cast(RegistrationResult, event.result)  # a tracked frame's result
        write_result(result, target, saveimg=self.saveimg)
        row = pose_row(event.index, name, result, event.seconds)
        self.rows.append(row)
        self.summaries.append(
            {
                "frame": event.index,
                "name": name,
                "folder": str(target.relative_to(self.folder)),
                "final_pose": pose_to_dict(pose_from_matrix(result.pose)),
                "similarity": result.similarity,
                "verdict": result.verdict,
                "iterations": result.iterations,
                "seconds": event.seconds,
                "stopped": bool(result.stopped),
                "state": event.state.to_json(),
            }
        )
        self.save("running")
        self.written.append(FrameWritten(target, event.index, event.result))
        return self.written[-1]

    def save(self, status: str, done: TrackDone | None = None) -> None:
        data = {
            "napari_xvr_track": TRACK_VERSION,
            "status": status,
            **self.header,
            "summary": self.summary(done),
            "frames": self.summaries,
        }
        files = {self.folder / "poses.csv": poses_csv(self.rows).encode()}
        if done is not None and done.smoothed is not None:
            names = {int(row["frame"]): row["name"] for row in self.rows}
            files[self.folder / SMOOTHED_FILE] = poses_csv(
                smoothed_rows(done.smoothed, names), SMOOTHED_COLUMNS
            ).encode()
            data["smoothed"] = {**done.smoothed.to_json(), "file": SMOOTHED_FILE}
        files[self.folder / "track.json"] = (json.dumps(data, indent=2) + "\n").encode()
        atomic_write_files(files)

    def drop_unlisted(self) -> None:
        """Remove a frame folder that an interruption left without its row."""
        listed = {frame_folder(self.folder, int(row["frame"])) for row in self.rows}
        for folder in (self.folder / "frames").glob("*"):
            if folder not in listed:
                shutil.rmtree(folder, ignore_errors=True)

    def summary(self, done: TrackDone | None) -> dict:
        verdicts = dict.fromkeys(SEVERITY, 0)
        for row in self.rows:
            if row["verdict"] in verdicts:
                verdicts[row["verdict"]] += 1
        tracked = [row["seconds"] for row in self.rows[1:]]
        return {
            "frames": len(self.rows),
            "verdicts": verdicts,
            "seconds": None if done is None else done.seconds,
            "tracked_frames_per_s": len(tracked) / sum(tracked) if tracked else None,
            "next_frame": None if done is None else done.next_frame,
            "stopped": None if done is None else done.stopped,
        }


def read_track(folder) -> dict:
    """A track folder's track.json, with ``rows``: poses.csv as dicts (numbers as floats)."""
    folder = Path(folder).expanduser()
    file = folder / "track.json"
    if not file.is_file():
        raise XvrInputError(f"{folder}: no track.json here; give a folder written by `xvr track`")
    data = read_json(file, hint="; the file is damaged")
    if (
        not isinstance(data, dict)
        or "napari_xvr_track" not in data
        or not isinstance(data.get("frames"), list)
    ):
        raise XvrInputError(f"{file}: not a napari-xvr track (no 'napari_xvr_track' and 'frames')")
    data["rows"] = read_poses(folder / "poses.csv")
    if [int(r["frame"]) for r in data["rows"]] != [f.get("frame") for f in data["frames"]]:
        raise XvrInputError(
            f"{folder}: poses.csv and track.json list different frames; the folder "
            "is damaged (track the sequence again)"
        )
    return data


def read_smoothed(folder) -> list[dict]:
    """A track folder's poses_smoothed.csv as a list of dicts (see :func:`read_poses`)."""
    file = Path(folder).expanduser() / SMOOTHED_FILE
    if not file.is_file():
        raise XvrInputError(
            f"{file.parent}: no {SMOOTHED_FILE}; the track was run with "
            "--no-smooth, was stopped, or has fewer than 3 usable frames"
        )
    return read_poses(file, SMOOTHED_COLUMNS)


def read_poses(file, columns: tuple = POSE_COLUMNS) -> list[dict]:
    """poses.csv as a list of dicts: name and verdict as text, the rest as numbers."""
    file = Path(file)
    if not file.is_file():
        raise XvrInputError(f"{file.parent}: no {file.name}; give a folder written by `xvr track`")
    try:
        with file.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not set(columns) <= set(reader.fieldnames):
                raise XvrInputError(f"{file}: not a poses table (its header is not {','.join(columns)})")
            return [
                {k: (v if k in ("name", "verdict") else float(v)) for k, v in row.items()} for row in reader
            ]
    except XvrInputError:
        raise
    except (UnicodeDecodeError, ValueError, TypeError, csv.Error) as err:
        raise XvrInputError(f"{file}: not a readable poses table ({err}); the file is damaged") from err


def row_matrix(row: dict) -> np.ndarray:
    """The 4x4 pose of a poses.csv row."""
    matrix = np.eye(4)
    for col in MATRIX_COLUMNS:
        matrix[int(col[1]), int(col[2])] = row[col]
    return matrix


def resume_state(folder, frame: int) -> TrackState:
    """The state a track folder recorded after `frame` (to resume at ``frame + 1``)."""
    data = read_track(folder)
    for summary in data["frames"]:
        if summary.get("frame") == frame:
            if summary.get("stopped"):
                raise XvrInputError(
                    f"{folder}: frame {frame} was stopped before it converged; resume from an earlier frame"
                )
            return TrackState.from_json(summary["state"])
    done = [f.get("frame") for f in data["frames"]]
    raise XvrInputError(
        f"{folder}: frame {frame} is not in this track (it has frames "
        f"{done[0] if done else '-'}..{done[-1] if done else '-'}); resume after one "
        "of them"
    )


def frame_result(folder, index: int) -> dict:
    """The result.json of one tracked frame."""
    return read_result(frame_folder(folder, index))
