"""Synthetic fluoroscopy: a multi-frame X-ray DICOM of the chest CT moving smoothly, and its truth.

Each frame is rendered by DiffDRR's own ``DRR`` (Siddon by default) at a known pose and turned
into detector counts with quantum noise, as :mod:`napari_xvr.synthetic` does for single X-rays.
The header carries frame 0's C-arm angles a few degrees off the truth, so ``xvr track dicom``
starts frame 0 as ``xvr register dicom`` does. Two motions: a C-arm sweep (the primary angle
turns steadily) and breathing (a few mm of sinusoidal translation with a small rotation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .geometry import Intrinsics, pose_from_zxy, pose_to_dict
from .io.atomic import atomic_write_text
from .io.dicom_write import write_xray_dicom
from .synthetic import detector_counts, example_ct, example_mask, structure_fiducials

MOTIONS = ("sweep", "breathing")


@dataclass(frozen=True)
class Motion:
    """A smooth path of C-arm poses: ZXY angles (deg) and translations (mm) per frame."""

    rotations: np.ndarray  # (F, 3)
    translations: np.ndarray  # (F, 3)

    def poses(self):
        return [pose_from_zxy(r, t) for r, t in zip(self.rotations, self.translations, strict=True)]


def sweep(
    frames: int = 60,
    degrees: float = 30.0,
    primary: float = 0.0,
    secondary: float = 5.0,
    sid: float = 850.0,
    offset=(5.0, 0.0, -5.0),
) -> Motion:
    """The primary angle turns by `degrees` in total, evenly, centred on `primary`."""
    angles = primary + np.linspace(-degrees / 2, degrees / 2, frames)
    rot = np.stack([angles, np.full(frames, secondary), np.zeros(frames)], axis=1)
    xyz = np.tile(np.array([offset[0], sid + offset[1], offset[2]], dtype=np.float64), (frames, 1))
    return Motion(rot, xyz)


def breathing(
    frames: int = 60,
    amplitude_mm: float = 4.0,
    period: float = 15.0,
    rotation_deg: float = 1.0,
    primary: float = 10.0,
    secondary: float = 5.0,
    sid: float = 850.0,
) -> Motion:
    """Cranio-caudal translation of `amplitude_mm` (half as much front-back) and a tilt of
    `rotation_deg`, sinusoidal with `period` frames, around a fixed C-arm pose."""
    phase = np.sin(2 * np.pi * np.arange(frames) / period)
    rot = np.stack([np.full(frames, primary), secondary + rotation_deg * phase, np.zeros(frames)], axis=1)
    xyz = np.stack([np.zeros(frames), sid + 0.5 * amplitude_mm * phase, amplitude_mm * phase], axis=1)
    return Motion(rot, xyz)


def make_sequence(
    out_dir,
    motion: Motion,
    intrinsics: Intrinsics | None = None,
    volume=None,
    mask=None,
    renderer: str = "siddon",
    seed: int = 0,
    header_error_deg: float = 3.0,
    name: str = "sequence",
) -> Path:
    """Write ``out_dir/<name>.dcm`` (one frame per pose of `motion`) and ``<name>.json`` (the
    true pose of every frame and the fiducials); returns the JSON's path."""
    from .io.volume import read_volume
    from .render import make_drr
    from .synthetic import DENSITY

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    intrinsics = intrinsics or Intrinsics(sdd=1020.0, height=128, width=128, delx=3.2, dely=3.2)
    volume, mask = volume or example_ct(), mask or example_mask()
    subject = read_volume(volume, mask, orientation="AP", density=DENSITY)
    drr = make_drr(subject, intrinsics, renderer=renderer, voxel_shift=0.5)
    rng = np.random.default_rng(seed + 1)
    poses = motion.poses()
    images = []
    for pose in poses:
        with torch.no_grad():
            images.append(detector_counts(drr(pose.to(drr.device))[0, 0], rng))
    error = np.random.default_rng(seed).uniform(-header_error_deg, header_error_deg, 2)
    primary, secondary = motion.rotations[0, :2] + error
    write_xray_dicom(
        out_dir / f"{name}.dcm",
        np.stack(images),
        intrinsics,
        float(primary),
        float(secondary),
        float(motion.translations[0, 1]),
    )
    truth = {
        "volume": str(Path(volume).resolve()),
        "mask": str(Path(mask).resolve()),
        "orientation": "AP",
        "intrinsics": intrinsics.to_dict(),
        "renderer": renderer,
        "fiducials_mm": structure_fiducials(subject).tolist(),
        "frames": [pose_to_dict(pose) for pose in poses],
    }
    return atomic_write_text(out_dir / f"{name}.json", json.dumps(truth, indent=2) + "\n")
