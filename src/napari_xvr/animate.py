"""Replay a registration: X-ray, DRR and their difference for each recorded iteration."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import XvrInputError
from .geometry import MAX_DETECTOR_PX, Intrinsics, pose_from_matrix, pose_from_zxy
from .imaging import unit
from .io.atomic import atomic_write_bytes
from .io.result import read_result, read_trajectory
from .io.xray import read_xray
from .memory import check_memory, gib, render_bytes

#: trajectory.csv files larger than this are refused before they are parsed
MAX_TRAJECTORY_BYTES = 256 << 20
MAX_FRAMES = 10_000
MAX_PANEL_PX = 2048


@dataclass(frozen=True)
class Frame:
    """One frame of the replay: images are float32 in [0, 1]."""

    index: int
    total: int
    row: dict
    xray: np.ndarray
    drr: np.ndarray
    difference: np.ndarray


def pick_rows(rows: list[dict], max_frames: int) -> list[dict]:
    """At most `max_frames` rows, evenly spaced, always keeping the first and the last."""
    if len(rows) <= max_frames:
        return rows
    idx = np.unique(np.linspace(0, len(rows) - 1, max_frames).round().astype(int))
    return [rows[i] for i in idx]


def chosen_path(rows: list[dict], data: dict) -> list[dict]:
    """The rows the final pose came from: a multi-start run's other starts are left out."""
    chosen = (data.get("multistart") or {}).get("chosen")
    if chosen is None:
        return rows
    return [row for row in rows if row.get("start", chosen) == chosen]


def replay(result_folder, max_frames: int = 60, max_size: int = 256, device=None) -> Iterator[Frame]:
    """Render the DRR at each (sub-sampled) trajectory row of a result folder."""
    from .register.optimiser.similarity import standardize
    from .register.volume_spec import VolumeSpec

    max_frames, max_size = _check_limits(max_frames, max_size)
    data = read_result(result_folder)
    folder = Path(result_folder)
    folder = folder if folder.is_dir() else folder.parent
    csv = folder / "trajectory.csv"
    if csv.is_file() and csv.stat().st_size > MAX_TRAJECTORY_BYTES:
        raise XvrInputError(
            f"{csv}: {gib(csv.stat().st_size)} is far more than any registration "
            "writes; the file is damaged or not a trajectory"
        )
    rows = pick_rows(chosen_path(read_trajectory(folder), data), max_frames)
    if not rows:
        raise XvrInputError(f"{result_folder}: the trajectory is empty; nothing to animate")
    _check_rows(rows, csv)
    inputs, prep = data.get("inputs") or {}, data.get("preprocessing") or {}
    for key in ("volume", "xray"):
        if not isinstance(inputs.get(key), str) or not inputs[key]:
            raise XvrInputError(
                f"{folder / 'result.json'}: inputs.{key} names no file; this result "
                f"cannot be replayed (it needs the {key} it was registered with)"
            )
    if not isinstance(data.get("intrinsics"), dict):
        raise XvrInputError(f"{folder / 'result.json'}: no intrinsics; this result cannot be replayed")
    intr = Intrinsics(**data["intrinsics"])
    small = panel_intrinsics(intr, max_size)
    spec = VolumeSpec.from_inputs(inputs, str(folder / "result.json"), device)
    check_memory(
        render_bytes(small.height, small.width, spec.renderer)
        + len(rows) * small.height * small.width * 3 * 3 * 3,
        f"animating {len(rows)} frames of {small.height}x{small.width} px",
        "lower --max_frames or --max_size",
    )
    drr = spec.make_renderer(spec.read(), small)
    from .io.xray import preprocess_xray

    xray = read_xray(inputs["xray"], prep.get("reducefn", "max"))
    fixed = preprocess_xray(
        xray.image, prep.get("crop", 0), prep.get("subtract_background", False), prep.get("linearize", False)
    )
    fixed = unit(standardize(fixed, (small.height, small.width))[0, 0].numpy())
    for index, row in enumerate(rows):
        pose = pose_from_zxy([row["r1"], row["r2"], row["r3"]], [row["tx"], row["ty"], row["tz"]])
        with torch.no_grad():
            image = unit(drr(pose.to(drr.device))[0, 0].float().cpu().numpy())
        yield Frame(index, len(rows), row, fixed, image, fixed - image)


def _check_limits(max_frames, max_size) -> tuple[int, int]:
    for name, value, lo, hi in (
        ("--max_frames", max_frames, 1, MAX_FRAMES),
        ("--max_size", max_size, 16, MAX_PANEL_PX),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise XvrInputError(f"{name} {value!r}: give a whole number between {lo} and {hi}")
        if not lo <= int(value) <= hi:
            raise XvrInputError(f"{name} {value}: must be between {lo} and {hi}")
    return int(max_frames), int(max_size)


def _check_rows(rows: list[dict], csv: Path) -> None:
    for row in rows:
        values = [row.get(k) for k in ("r1", "r2", "r3", "tx", "ty", "tz")]
        if any(v is None or not np.isfinite(v) for v in values):
            raise XvrInputError(
                f"{csv}: a row has a missing or non-finite pose ({values}); the "
                "trajectory is damaged, register again to replay it"
            )


def panel_intrinsics(intr: Intrinsics, max_size: int) -> Intrinsics:
    """`intr` resampled so that its longer side is at most `max_size` (and each side >= 2 px)."""
    scale = min(1.0, max_size / max(intr.height, intr.width))
    if scale >= 1.0:
        return intr
    from dataclasses import replace

    height = min(MAX_DETECTOR_PX, max(2, int(intr.height * scale)))
    width = min(MAX_DETECTOR_PX, max(2, int(intr.width * scale)))
    return replace(
        intr,
        height=height,
        width=width,
        delx=intr.delx * intr.width / width,
        dely=intr.dely * intr.height / height,
    )


def compose(frame: Frame) -> np.ndarray:
    """X-ray | DRR | difference side by side as uint8 RGB."""
    diff = np.clip(frame.difference * 0.5 + 0.5, 0, 1)
    panel = np.concatenate([frame.xray, frame.drr, diff], axis=1)
    rgb = np.repeat(panel[..., None], 3, axis=-1)
    return (rgb * 255).round().astype(np.uint8)


def check_output(path, fps, overwrite: bool = False) -> Path:
    """The animation's path and frame rate, checked before any rendering; an existing file is
    refused unless `overwrite`."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in (".gif", ".mp4"):
        raise XvrInputError(f"-o {path}: use a .gif or .mp4 file name")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not 0 < fps <= 120:
        raise XvrInputError(f"--fps {fps!r}: give a number of frames per second between 1 and 120")
    if path.is_dir():
        raise XvrInputError(f"-o {path} is a folder; give a .gif or .mp4 file name")
    if path.exists() and not overwrite:
        raise XvrInputError(f"-o {path} exists; pass --overwrite to replace it, or choose another name")
    return path


def write_animation(frames: list[np.ndarray], path, fps: int = 10, overwrite: bool = False) -> Path:
    """Write a GIF or MP4 atomically (format from the suffix)."""
    import io

    import imageio.v3 as iio

    path = check_output(path, fps, overwrite)
    suffix = path.suffix.lower()
    if not frames:
        raise XvrInputError("no frames to write")
    if suffix == ".gif":
        buffer = io.BytesIO()
        iio.imwrite(buffer, np.stack(frames), extension=".gif", duration=1000 / fps, loop=0)
        return atomic_write_bytes(path, buffer.getvalue())
    import os
    import tempfile

    from .io.atomic import _check_parent, output_error

    _check_parent(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.mp4", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise output_error(path, err) from err
    tmp = Path(name)
    try:
        stack = np.stack(frames)
        pad_h, pad_w = (-stack.shape[1]) % 16, (-stack.shape[2]) % 16
        stack = np.pad(stack, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
        iio.imwrite(tmp, stack, extension=".mp4", fps=fps, codec="libx264")
        os.chmod(tmp, 0o644)
        tmp.replace(path)
    except OSError as err:
        raise output_error(path, err) from err
    finally:
        tmp.unlink(missing_ok=True)
    return path


def animate_result(
    result_folder,
    path,
    fps: int = 10,
    max_frames: int = 60,
    max_size: int = 256,
    device=None,
    overwrite: bool = False,
    progress=None,
) -> Path:
    """Replay a result folder's optimisation into a GIF/MP4 at `path` (what `xvr animate` does).

    `progress(done, total)` is called after each frame (the CLI's bar)."""
    check_output(path, fps, overwrite)
    frames = []
    for frame in replay(result_folder, max_frames, max_size, device):
        frames.append(compose(frame))
        if progress is not None:
            progress(frame.index + 1, frame.total)
    return write_animation(frames, path, fps, overwrite)


def is_track(folder) -> bool:
    """Whether `folder` is an ``xvr track`` output (it has track.json)."""
    return (Path(folder).expanduser() / "track.json").is_file()


def replay_track(track_folder, max_frames: int = 60, max_size: int = 256, device=None) -> Iterator[Frame]:
    """Each (sub-sampled) frame of a tracked sequence: its X-ray and the DRR at its tracked pose."""
    from .register.workflows.track_io import read_track, row_matrix

    max_frames, max_size = _check_limits(max_frames, max_size)
    data = read_track(track_folder)
    rows = pick_rows(data["rows"], max_frames)
    if not rows:
        raise XvrInputError(f"{track_folder}: the track has no frames; nothing to animate")
    frames, intr = _track_frames(track_folder, data)
    small = panel_intrinsics(intr, max_size)
    inputs = data.get("inputs") or {}
    drr = _track_renderer(inputs, small, len(rows), device)
    for index, row in enumerate(rows):
        pose = pose_from_matrix(row_matrix(row))
        with torch.no_grad():
            image = unit(drr(pose.to(drr.device))[0, 0].float().cpu().numpy())
        fixed = _frame_panel(frames.frame(int(row["frame"])), data.get("preprocessing") or {}, small)
        yield Frame(index, len(rows), row, fixed, image, fixed - image)


def _track_frames(folder, data: dict):
    """The tracked sequence's frames (read as recorded: its files and detector)."""
    from .register.workflows.sequence import read_frames

    sequence = (data.get("inputs") or {}).get("sequence") or {}
    paths, intrinsics = sequence.get("paths"), sequence.get("intrinsics")
    if not isinstance(paths, list) or not paths or not isinstance(intrinsics, dict):
        raise XvrInputError(
            f"{Path(folder) / 'track.json'}: inputs.sequence names no frames; this track cannot be replayed"
        )
    intr = Intrinsics(**intrinsics)
    overrides = {k: getattr(intr, k) for k in ("sdd", "delx", "dely", "x0", "y0")}
    return read_frames(paths, **overrides), intr


def _track_renderer(inputs: dict, small: Intrinsics, n_frames: int, device):
    """The DRR module a track was registered with, at the panel's size."""
    from .register.volume_spec import VolumeSpec

    spec = VolumeSpec.from_inputs(inputs, "track.json", device)
    check_memory(
        render_bytes(small.height, small.width, spec.renderer)
        + n_frames * small.height * small.width * 3 * 4 * 3,
        f"animating {n_frames} frames of {small.height}x{small.width} px",
        "lower --max_frames or --max_size",
    )
    return spec.make_renderer(spec.read(), small)


def _frame_panel(xray, prep: dict, small: Intrinsics) -> np.ndarray:
    """One frame's X-ray preprocessed as it was registered, at the panel's size, in [0, 1]."""
    from .io.xray import preprocess_xray
    from .register.optimiser.similarity import standardize

    fixed = preprocess_xray(
        xray.image, prep.get("crop", 0), prep.get("subtract_background", False), prep.get("linearize", False)
    )
    return unit(standardize(fixed, (small.height, small.width))[0, 0].numpy())


def overlay(frame: Frame) -> np.ndarray:
    """The X-ray in grey with the DRR blended in green (magenta where the X-ray is brighter)."""
    rgb = np.stack([frame.xray, frame.drr, frame.xray], axis=-1)
    return (rgb * 255).round().astype(np.uint8)


def compose_track(frame: Frame) -> np.ndarray:
    """X-ray | DRR | difference | overlay, side by side as uint8 RGB."""
    return np.concatenate([compose(frame), overlay(frame)], axis=1)


def animate_track(
    track_folder,
    path,
    fps: int = 10,
    max_frames: int = 60,
    max_size: int = 256,
    device=None,
    overwrite: bool = False,
    progress=None,
) -> Path:
    """A GIF/MP4 of a tracked sequence (what `xvr animate -i TRACKDIR` does): one frame of the
    animation per tracked frame, the DRR at its tracked pose over its X-ray."""
    check_output(path, fps, overwrite)
    frames = []
    for frame in replay_track(track_folder, max_frames, max_size, device):
        frames.append(compose_track(frame))
        if progress is not None:
            progress(frame.index + 1, frame.total)
    return write_animation(frames, path, fps, overwrite)
