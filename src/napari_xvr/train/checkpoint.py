"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

Ours hold model/optimizer/scheduler state, the iteration to run next, RNG states, accumulated
gradients, a JSON-able config and an ISO date. xvr's published checkpoints (a datetime ``date``
and a config dict) load too: only ``datetime.datetime`` is allow-listed for unpickling.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import XvrInputError
from ..io.atomic import atomic_write_bytes
from ..io.torchfile import load_torch_file

FORMAT = "napari-xvr-checkpoint/1"
SAFE_GLOBALS: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = [datetime.datetime]
#: what a checkpoint's config means when it lacks a key, as xvr 0.1.0's ``load_model`` reads it (an
#: xvr checkpoint without ``reverse_x_axis`` was rendered unflipped, one without
#: ``unit_conversion_factor`` regressed millimetres directly); ours always record both
MODEL_DEFAULTS = {
    "convention": "ZXY",
    "norm_layer": "groupnorm",
    "unit_conversion_factor": 1.0,
    "orientation": "AP",
    "reverse_x_axis": False,
}


def weights_digest(state_dict: dict) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and bytes (what the network computes with)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path, state: dict) -> Path:
    """Serialise `state` in memory with the weights' checksum, then write it in one atomic replace."""
    buffer = io.BytesIO()
    digest = weights_digest(state["model_state_dict"]) if "model_state_dict" in state else None
    torch.save({"format": FORMAT, **state, "weights_sha256": digest}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint file (ours or xvr's) safely; a folder gives its newest good one."""
    path = Path(path)
    if path.is_dir():
        path = latest_checkpoint(path)
    if not path.exists():
        raise XvrInputError(f"-c {path}: no such checkpoint file or folder")
    ckpt = load_torch_file(
        path, f"-c {path}", "a pose-regressor checkpoint (napari-xvr's or xvr's)", tuple(SAFE_GLOBALS)
    )
    validate(ckpt, path)
    assert isinstance(ckpt, dict)  # validate refused anything else
    recorded = ckpt.get("weights_sha256")
    if recorded is not None and recorded != weights_digest(ckpt["model_state_dict"]):
        raise XvrInputError(
            f"-c {path}: the weights do not match the checksum recorded when it was "
            "saved; the file is damaged (use an earlier checkpoint or copy it again)"
        )
    return ckpt


def validate(ckpt, path) -> None:
    """Clear errors for checkpoints that lack what we need."""
    if not isinstance(ckpt, dict):
        raise XvrInputError(f"-c {path}: a checkpoint must be a dict, got {type(ckpt).__name__}")
    missing = [k for k in ("model_state_dict", "config") if k not in ckpt]
    if missing:
        raise XvrInputError(f"-c {path}: the checkpoint lacks {', '.join(missing)}")
    if not isinstance(ckpt["config"], dict):
        raise XvrInputError(f"-c {path}: 'config' must be a dict")
    model_spec(ckpt["config"], path)
    state = ckpt["model_state_dict"]
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise XvrInputError(
            f"-c {path}: 'model_state_dict' is not a set of named weight tensors; the "
            "file is damaged or not a pose-regressor checkpoint"
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise XvrInputError(
            f"-c {path}: the weights hold NaN or infinite values ({bad[0]}); the run "
            "diverged before this checkpoint: use an earlier one"
        )


def check_resumable(ckpt: dict, path) -> None:
    """Our checkpoint holds what an exact restart needs, each of the right kind."""
    problems = []
    for key in ("optimizer_state_dict", "scheduler_state_dict"):
        if not isinstance(ckpt.get(key), dict):
            problems.append(f"{key} is missing or not a dict")
    itr = ckpt.get("itr")
    if isinstance(itr, bool) or not isinstance(itr, int) or itr < 0:
        problems.append(f"itr={itr!r} is not an iteration number")
    number = ckpt.get("model_number", 0)
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        problems.append(f"model_number={number!r} is not a checkpoint number")
    grads = ckpt.get("grads") or {}
    if not isinstance(grads, dict) or not all(isinstance(v, torch.Tensor) for v in grads.values()):
        problems.append("grads is not a set of tensors")
    rng = ckpt.get("rng") or []
    if not isinstance(rng, list | tuple) or not all(
        isinstance(r, dict) and isinstance(r.get("torch"), torch.Tensor) and "python" in r for r in rng
    ):
        problems.append("rng is not a list of RNG states")
    centre = ckpt.get("template_centre")
    if centre is not None:
        try:
            ok = len(centre) == 3 and all(math.isfinite(float(v)) for v in centre)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problems.append(f"template_centre={centre!r} is not 3 numbers")
    if problems:
        raise XvrInputError(
            f"-c {path}: the checkpoint's training state is damaged ({'; '.join(problems)}); "
            "restart from an earlier checkpoint, or finetune from it with `xvr train -c`"
        )


def model_spec(config: dict, source="checkpoint") -> dict:
    """What the network and its input need, from our config or xvr's (same key names)."""
    need = ("model_name", "parameterization", "height", "sdd", "delx")
    missing = [k for k in need if config.get(k) is None]
    if missing:
        raise XvrInputError(f"{source}: the checkpoint's config lacks {', '.join(missing)}")
    spec = {k: config[k] for k in need}
    for key, default in MODEL_DEFAULTS.items():
        spec[key] = config.get(key, default) if config.get(key) is not None else default
    if spec["parameterization"] != "euler_angles":
        spec["convention"] = config.get("convention")
    for key, kind, low, high in (
        ("height", int, 16, 4096),
        ("sdd", float, 1e-3, 1e5),
        ("delx", float, 1e-4, 1e3),
        ("unit_conversion_factor", float, 1e-9, 1e9),
    ):
        try:
            value = kind(spec[key])
        except (TypeError, ValueError, OverflowError) as err:
            raise XvrInputError(
                f"{source}: the checkpoint's config has {key}={spec[key]!r}, not a "
                "number; the file is damaged or not a pose regressor"
            ) from err
        if not (math.isfinite(value) and low <= value <= high) or (kind is int and value != spec[key]):
            raise XvrInputError(
                f"{source}: the checkpoint's config has {key}={spec[key]!r}, outside "
                f"{low:g}..{high:g}; the file is damaged or not a pose regressor"
            )
        spec[key] = value
    from ..geometry import PARAMETERIZATIONS

    if spec["parameterization"] not in PARAMETERIZATIONS or not isinstance(spec["model_name"], str):
        raise XvrInputError(
            f"{source}: the checkpoint's config has parameterization "
            f"{spec['parameterization']!r} / model_name {spec['model_name']!r}; "
            "the file is damaged or not a pose regressor"
        )
    spec["frame_center_ras"] = config.get("frame_center_ras")
    return spec


def is_ours(ckpt: dict) -> bool:
    return ckpt.get("format") == FORMAT


def checkpoint_itr(path) -> int:
    """The iteration a checkpoint resumes at (-1 if it cannot be read)."""
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(ckpt.get("itr", -1))
    except Exception:
        return -1


def latest_checkpoint(folder) -> Path:
    """The readable checkpoint with the highest iteration in `folder`."""
    folder = Path(folder)
    candidates = [p for p in folder.glob("*.pth") if not p.name.startswith(".")]
    scored = sorted(((checkpoint_itr(p), p.stat().st_mtime, p) for p in candidates), reverse=True)
    scored = [s for s in scored if s[0] >= 0]
    if not scored:
        raise XvrInputError(f"-c {folder}: no readable *.pth checkpoint in this folder")
    return scored[0][2]


def load_model(path, device="cpu"):
    """(model in eval mode, normalised spec, checkpoint dict) from any checkpoint."""
    from .network import build_model

    ckpt = load_checkpoint(path)
    spec = model_spec(ckpt["config"], path)
    model = build_model(spec)
    try:
        model.load_state_dict(ckpt["model_state_dict"])
    except RuntimeError as err:
        raise XvrInputError(
            f"-c {path}: the weights do not fit a {spec['model_name']} with "
            f"{spec['parameterization']} heads ({str(err).splitlines()[0]})"
        ) from err
    return model.to(device).eval(), spec, ckpt
