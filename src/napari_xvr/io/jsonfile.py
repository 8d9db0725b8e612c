"""Reading a JSON file a user gave, with an error that names the file and what it should be."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import XvrInputError


def read_json(path, what: str = "", hint: str = ""):
    """The parsed content of `path`; an unreadable or malformed file is refused as
    ``"<what> <path>: not readable JSON (...)<hint>"``."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        prefix = f"{what} " if what else ""
        raise XvrInputError(f"{prefix}{path}: not readable JSON ({err}){hint}") from err
