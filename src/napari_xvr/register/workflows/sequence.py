"""The frames of a fluoroscopy sequence: a multi-frame X-ray, or single-frame files in order.

Every frame must have the same detector (size and intrinsics): tracking renders one DRR module
frame after frame. All files are read and checked before any work; a multi-frame file keeps its
decoded frames, single-frame files are read again one at a time, so memory does not grow with
the number of files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import XvrInputError
from ...geometry import Intrinsics
from ...io.xray import XRay, read_xray
from .pipeline import collect_xrays


@dataclass
class Frames:
    """One sequence: ``len(frames)`` X-rays sharing `intrinsics`; :meth:`frame` reads one."""

    paths: list[Path]  # one multi-frame file, or one file per frame
    intrinsics: Intrinsics
    count: int
    overrides: dict = dataclasses.field(default_factory=dict)
    movie: XRay | None = None  # the multi-frame file, its frames decoded

    def __len__(self) -> int:
        return self.count

    def frame(self, index: int) -> XRay:
        """Frame `index` as a single X-ray (a multi-frame file's frame records its index)."""
        if not 0 <= index < self.count:
            raise XvrInputError(f"frame {index}: the sequence has {self.count} frames (0..{self.count - 1})")
        if self.movie is None:
            return read_xray(self.paths[index], **self.overrides)
        movie = self.movie
        assert movie.frames is not None  # a movie's frames (read_xray keeps them)
        return dataclasses.replace(
            movie,
            image=movie.frames[index].copy(),
            frames=None,
            reducefn=index,
            header={**movie.header, "Frame": index},
        )

    def reducefn(self, index: int) -> str | int:
        """What re-reads frame `index` from its file (``read_xray(path, reducefn)``)."""
        return index if self.movie is not None else "max"

    def path(self, index: int) -> Path:
        return self.paths[0] if self.movie is not None else self.paths[index]

    def name(self, index: int) -> str:
        """'cine.dcm [frame 3]' or the frame's file name."""
        if self.movie is not None:
            return f"{self.paths[0].name} [frame {index}]"
        return self.paths[index].name

    def describe(self) -> dict:
        """What track.json records of the input."""
        kind = "multi-frame" if self.movie is not None else "files"
        return {
            "kind": kind,
            "frames": self.count,
            "paths": [str(p.resolve()) for p in self.paths],
            "intrinsics": self.intrinsics.to_dict(),
        }


def read_frames(items: Sequence, pattern: str = "*.dcm", **overrides) -> Frames:
    """The sequence in `items`: one multi-frame file, a folder of single-frame files (sorted,
    matching `pattern`) or single-frame files in the order given. `overrides` are read_xray's
    intrinsics (sdd, delx, dely, x0, y0; None keeps the header's)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    paths = collect_xrays(items, pattern)
    first = read_xray(paths[0], 0, **overrides)
    if first.frames is not None:
        if len(paths) > 1:
            raise XvrInputError(
                f"{paths[0]}: a multi-frame X-ray ({len(first.frames)} frames) among {len(paths)} "
                "files; give the multi-frame file on its own, or a folder of single-frame files"
            )
        return Frames(paths, first.intrinsics, len(first.frames), overrides, movie=first)
    for path in paths[1:]:
        _check_frame(path, read_xray(path, 0, **overrides), paths[0], first.intrinsics)
    return Frames(paths, first.intrinsics, len(paths), overrides)


def split_sequences(items: Sequence, **overrides) -> list[list[Path]]:
    """The sequences in `items`, as ``xvr track`` takes its SEQUENCE arguments: a lone argument
    is one sequence (as :func:`read_frames` reads it); among several, each folder and each
    multi-frame X-ray is a sequence of its own, and single-frame files given together are the
    frames of one sequence, in order. A mix of the two is refused by name (it is ambiguous:
    which sequence would the single frames belong to?). `overrides` are :func:`read_frames`'
    (plain images need them to be read at all)."""
    paths = [Path(item).expanduser() for item in items]
    if len(paths) <= 1:
        return [paths]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    whole, frames = [], []  # arguments that are sequences themselves, and single frames
    for path in paths:
        if path.is_dir():
            whole.append(path)
        elif not path.is_file():
            raise XvrInputError(f"{path}: no such X-ray file or folder")
        elif read_xray(path, 0, **overrides).frames is not None:
            whole.append(path)
        else:
            frames.append(path)
    if whole and frames:
        what = "a folder" if whole[0].is_dir() else "a multi-frame X-ray"
        raise XvrInputError(
            f"{frames[0]} is a single frame, but {whole[0]} is {what} (a sequence of its own): "
            "several SEQUENCE arguments are either the frame files of one sequence or one "
            "sequence each (folders, multi-frame X-rays); put the single frames in a folder of "
            "their own and give that folder, or track them in a separate command"
        )
    return [[path] for path in whole] if whole else [frames]


def _check_frame(path: Path, xray: XRay, first: Path, intrinsics: Intrinsics) -> None:
    """Refuse a file that is not one more frame of the sequence that `first` began."""
    if xray.frames is not None:
        raise XvrInputError(
            f"{path}: a multi-frame X-ray ({len(xray.frames)} frames) in a sequence of "
            "single-frame files; track it on its own, or give only single-frame files"
        )
    mine = xray.intrinsics
    if (mine.height, mine.width) != (intrinsics.height, intrinsics.width):
        raise XvrInputError(
            f"{path}: {mine.height} x {mine.width} px, but the sequence's first frame {first.name} "
            f"is {intrinsics.height} x {intrinsics.width} px; every frame must have the same "
            "detector: give frames of one sequence (or register them apart with `xvr register`)"
        )
    if mine != intrinsics:
        differ = [
            f"{k} {getattr(mine, k):g} vs {getattr(intrinsics, k):g}"
            for k in ("sdd", "delx", "dely", "x0", "y0")
            if getattr(mine, k) != getattr(intrinsics, k)
        ]
        raise XvrInputError(
            f"{path}: its detector differs from the first frame {first.name}'s ({', '.join(differ)});"
            " every frame must have the same intrinsics: give frames of one sequence, or pass "
            "--sdd/--delx/--dely/--x0/--y0 to set them for all"
        )
