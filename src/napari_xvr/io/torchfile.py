"""Loading `torch.save` files that people are handed: ``weights_only=True``, one-line errors."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from ..errors import XvrInputError

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_torch_file(path, label: str, expected: str, allowed: tuple = ()) -> object:
    """``torch.load(weights_only=True)`` of `path` on the CPU, only `allowed` classes unpickled.

    `label` starts each message (e.g. ``-c model.pth``); `expected` says what the file should be
    (e.g. ``a training checkpoint``). A missing, truncated, non-torch or code-carrying file gives
    an XvrInputError that names it and says why.
    """
    path = Path(path)
    if not path.is_file():
        raise XvrInputError(f"{label}: no such file; give {expected}")
    if not zipfile.is_zipfile(path):
        raise XvrInputError(
            f"{label}: not a torch.save archive (not a zip file: truncated or "
            f"another format); give {expected}"
        )
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = _GLOBAL.search(str(err))
        what = f"the Python object {found.group(1)}" if found else "objects other than tensors"
        raise XvrInputError(
            f"{label}: refused to load, it needs unpickling {what} (only tensors, "
            f"numbers, strings and dicts are loaded); give {expected}"
        ) from err
    except Exception as err:  # truncated, damaged zip, wrong records, ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise XvrInputError(
            f"{label}: cannot read it ({reason}); it may be truncated or damaged, give {expected}"
        ) from err
