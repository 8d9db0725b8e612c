"""Small helpers for user-facing error messages."""

from __future__ import annotations


def one_line(err: BaseException | str, limit: int = 400) -> str:
    """An exception's message squeezed onto one line (CLI errors must be one line)."""
    text = " ".join(str(err).split())
    return text[:limit] + ("..." if len(text) > limit else "")
