"""Register files end to end: read volume and X-rays, initialise, optimise, write results.

`register_files` is a generator of the engine's events plus :class:`XrayStarted` and
:class:`Written`, consumed by the CLI (progress bars), napari and scripts alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from diffdrr.pose import RigidTransform

from .. import defaults
from ..errors import XvrInputError
from ..io.volume import parse_labels, read_volume
from ..io.xray import XRay, read_xray
from ..render import make_drr
from .engine import Preprocessing, StopToken, register
from .events import Done
from .options import RegistrationOptions
from .result import write_result


@dataclass(frozen=True)
class XrayStarted:
    index: int  # 0-based
    total: int
    path: Path


@dataclass(frozen=True)
class Written:
    path: Path  # the result folder
    result: object


@dataclass
class VolumeSpec:
    """Which volume to render and how (the reference's renderer options)."""

    volume: Path
    mask: Path | None = None
    labels: str | list[int] | None = None
    orientation: str = defaults.reg("orientation")
    renderer: str = defaults.reg("renderer")
    reverse_x_axis: bool = defaults.reg("reverse_x_axis")
    voxel_shift: float = defaults.reg("voxel_shift")
    device: str | None = None
    drr_kwargs: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {
            "volume": str(Path(self.volume).resolve()),
            "mask": None if self.mask is None else str(Path(self.mask).resolve()),
            "labels": parse_labels(self.labels),
            "orientation": self.orientation,
            "renderer": self.renderer,
            "reverse_x_axis": self.reverse_x_axis,
            "voxel_shift": self.voxel_shift,
        }


def collect_xrays(items: Sequence, pattern: str = "*.dcm") -> list[Path]:
    """Files as given; folders expanded with `pattern` (sorted)."""
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.glob(pattern) if p.is_file())
            if not found:
                raise XvrInputError(f"{path}: no files match --pattern {pattern!r} in this folder")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise XvrInputError(f"{path}: no such X-ray file or folder")
    if not paths:
        raise XvrInputError("no X-ray given; pass one or more files or folders")
    return paths


def register_files(
    xrays: Sequence,
    spec: VolumeSpec,
    initializer: Callable[[XRay], RigidTransform],
    outpath,
    options: RegistrationOptions | None = None,
    preprocessing: Preprocessing | None = None,
    intrinsic_overrides: dict | None = None,
    pattern: str = "*.dcm",
    init_only: bool = False,
    saveimg: bool = False,
    stop: StopToken | None = None,
    saveplot: bool = False,
) -> Iterator:
    """Register every X-ray in `xrays` and write ``outpath/<stem>/``; yields progress events.

    With `saveplot`, each result folder also gets ``registration.gif`` (the optimisation replayed,
    as ``xvr animate`` makes it).
    """
    options = options or RegistrationOptions()
    preprocessing = preprocessing or Preprocessing()
    stop = stop or StopToken()
    outpath = Path(outpath)
    if outpath.exists() and not outpath.is_dir():
        raise XvrInputError(f"-o {outpath}: is a file; give a folder for the results")
    paths = collect_xrays(xrays, pattern)

    def load(path: Path) -> XRay:
        return read_xray(path, preprocessing.reducefn, **(intrinsic_overrides or {}))

    # every file and its initial pose first, so a bad one fails before any long work; only the
    # poses are kept: images are read again one at a time, so memory does not grow with the count
    inits, first = [], None
    for path in paths:
        xray = load(path)
        inits.append(initializer(xray))
        if first is None:
            first = xray.intrinsics
    subject = read_volume(spec.volume, spec.mask, spec.labels, spec.orientation)
    drr = make_drr(subject, first, spec.renderer, spec.reverse_x_axis,
                   spec.voxel_shift, spec.device, **spec.drr_kwargs)
    describe = getattr(initializer, "describe", lambda: {"type": type(initializer).__name__})
    for index, (path, init) in enumerate(zip(paths, inits, strict=True)):
        if stop.stopped:
            break
        xray = load(path)
        yield XrayStarted(index, len(paths), xray.path)
        inputs = {"xray": str(xray.path.resolve()), **spec.describe(), "header": xray.header,
                  "pf_to_af": xray.pf_to_af, "device": str(drr.device)}
        result = None
        for event in register(xray, drr, init, options, preprocessing, init_only, saveimg, stop,
                              inputs, describe()):
            if isinstance(event, Done):
                result = event.result
            yield event
        folder = write_result(result, outpath / xray.stem, saveimg=saveimg)
        if saveplot and result.trajectory:
            from ..animate import animate_result

            animate_result(folder, folder / "registration.gif", device=drr.device)
        yield Written(folder, result)
