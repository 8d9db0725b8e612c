"""Replay a registration: X-ray, DRR and their difference for each recorded iteration."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import XvrInputError
from .geometry import Intrinsics, pose_from_zxy
from .io.atomic import atomic_write_bytes
from .io.xray import read_xray
from .register.result import read_result, read_trajectory


@dataclass(frozen=True)
class Frame:
    """One frame of the replay: images are float32 in [0, 1]."""

    index: int
    total: int
    row: dict
    xray: np.ndarray
    drr: np.ndarray
    difference: np.ndarray


def _norm(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, dtype=np.float32)
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo + 1e-8)


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
    from .io.volume import read_volume
    from .register.similarity import standardize
    from .render import make_drr

    data = read_result(result_folder)
    rows = pick_rows(chosen_path(read_trajectory(result_folder), data), max_frames)
    if not rows:
        raise XvrInputError(f"{result_folder}: the trajectory is empty; nothing to animate")
    inputs, prep = data["inputs"], data.get("preprocessing", {})
    intr = Intrinsics(**data["intrinsics"])
    scale = min(1.0, max_size / max(intr.height, intr.width))
    small = intr.rescaled(scale)
    subject = read_volume(inputs["volume"], inputs.get("mask"), inputs.get("labels"),
                          inputs.get("orientation", "AP"))
    drr = make_drr(subject, small, inputs.get("renderer", "trilinear"),
                   inputs.get("reverse_x_axis", False), inputs.get("voxel_shift", 0.5), device)
    from .io.xray import preprocess_xray

    xray = read_xray(inputs["xray"], prep.get("reducefn", "max"))
    fixed = preprocess_xray(xray.image, prep.get("crop", 0), prep.get("subtract_background", False),
                            prep.get("linearize", False))
    fixed = _norm(standardize(fixed, (small.height, small.width))[0, 0].numpy())
    for index, row in enumerate(rows):
        pose = pose_from_zxy([row["r1"], row["r2"], row["r3"]], [row["tx"], row["ty"], row["tz"]])
        with torch.no_grad():
            image = _norm(drr(pose.to(drr.device))[0, 0].float().cpu().numpy())
        yield Frame(index, len(rows), row, fixed, image, fixed - image)


def compose(frame: Frame) -> np.ndarray:
    """X-ray | DRR | difference side by side as uint8 RGB."""
    diff = np.clip(frame.difference * 0.5 + 0.5, 0, 1)
    panel = np.concatenate([frame.xray, frame.drr, diff], axis=1)
    rgb = np.repeat(panel[..., None], 3, axis=-1)
    return (rgb * 255).round().astype(np.uint8)


def write_animation(frames: list[np.ndarray], path, fps: int = 10) -> Path:
    """Write a GIF or MP4 atomically (format from the suffix)."""
    import io

    import imageio.v3 as iio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise XvrInputError(f"-o {path}: use a .gif or .mp4 file name")
    if not frames:
        raise XvrInputError("no frames to write")
    if suffix == ".gif":
        buffer = io.BytesIO()
        iio.imwrite(buffer, np.stack(frames), extension=".gif", duration=1000 / fps, loop=0)
        return atomic_write_bytes(path, buffer.getvalue())
    tmp = path.with_name(f".{path.stem}.tmp.mp4")
    try:
        stack = np.stack(frames)
        pad_h, pad_w = (-stack.shape[1]) % 16, (-stack.shape[2]) % 16
        stack = np.pad(stack, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
        iio.imwrite(tmp, stack, extension=".mp4", fps=fps, codec="libx264")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def animate_result(result_folder, path, fps: int = 10, max_frames: int = 60, max_size: int = 256,
                   device=None) -> Path:
    """Replay a result folder's optimisation into a GIF/MP4 at `path` (what `xvr animate` does)."""
    frames = [compose(frame) for frame in replay(result_folder, max_frames, max_size, device)]
    return write_animation(frames, path, fps)
