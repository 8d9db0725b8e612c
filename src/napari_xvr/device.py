"""Pick the compute device: cuda, then mps, then cpu, unless the user names one."""

from __future__ import annotations

import torch

from .errors import XvrInputError


def pick_device(name: str | torch.device | None = None) -> torch.device:
    """Return the device named by `name`, or the best one available when `name` is None/'auto'."""
    if isinstance(name, torch.device):
        return name
    if name is None or str(name).lower() in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(str(name))
    except RuntimeError as err:
        raise XvrInputError(
            f"--device {name!r} is not a device torch knows; use auto, cpu, cuda, cuda:N or mps"
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise XvrInputError(f"--device {name}: CUDA is not available here; use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise XvrInputError(f"--device {name}: MPS is not available here; use --device cpu or auto")
    return device


def device_choices() -> list[str]:
    """The devices here: auto, cpu, cuda and cuda:N for each visible GPU, mps where available."""
    import torch

    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names
