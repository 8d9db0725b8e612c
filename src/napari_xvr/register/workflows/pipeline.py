"""Register files end to end: read volume and X-rays, initialise, optimise, write results.

`register_files` is a generator of the engine's events plus :class:`XrayStarted` and
:class:`.one_xray.Written`, consumed by the CLI (progress bars), napari and scripts alike.
Each X-ray is registered by :func:`.one_xray.register_xray`; the volume is a
:class:`.volume_spec.VolumeSpec`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from diffdrr.pose import RigidTransform

from ...errors import XvrInputError
from ...io.xray import XRay, read_xray, xray_stem
from ..engine import Preprocessing, StopToken, check_stages, check_view
from ..options import Outputs, RegistrationOptions, RunChecks
from ..volume_spec import VolumeSpec
from .one_xray import register_xray
from .shard import ready_share


@dataclass(frozen=True)
class XrayStarted:
    index: int  # 0-based
    total: int
    path: Path | None  # None: an X-ray given in memory


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


def plan_outputs(
    paths: Sequence[Path], outpath: Path, overwrite: bool = False, how_to_replace: str = "pass --overwrite"
) -> list[Path]:
    """One result folder per X-ray, decided before any work: distinct inputs never share one.

    The folder is ``outpath/<stem>``; X-rays with the same stem from different folders get
    ``<parent>_<stem>`` (then a number). An existing result is refused unless `overwrite`.
    """
    stems = [xray_stem(p) for p in paths]
    names = []
    for path, stem in zip(paths, stems, strict=True):
        name = stem if stems.count(stem) == 1 else f"{path.resolve().parent.name}_{stem}"
        base, n = name, 1
        while name in names:
            n += 1
            name = f"{base}_{n}"
        names.append(name)
    folders = [outpath / name for name in names]
    existing = [f for f in folders if f.exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise XvrInputError(
            f"-o {outpath}: {existing[0]}{more} already hold(s) a result; {how_to_replace} to "
            "replace them, or choose another output folder"
        )
    clash = [f for f in folders if f.exists() and not f.is_dir()]
    if clash:
        raise XvrInputError(
            f"{clash[0]} is a file where a result folder would go; move it or choose another -o"
        )
    return folders


def register_files(
    xrays: Sequence,
    spec: VolumeSpec,
    initializer: Callable[[XRay], RigidTransform],
    outpath,
    options: RegistrationOptions | None = None,
    preprocessing: Preprocessing | None = None,
    intrinsic_overrides: dict | None = None,
    pattern: str = "*.dcm",
    *,
    init_only: bool = False,
    outputs: Outputs | None = None,
    checks: RunChecks | None = None,
    stop: StopToken | None = None,
    shard: tuple[int, int] = (0, 1),
) -> Iterator:
    """Register every X-ray in `xrays` and write ``outpath/<stem>/``; yields progress events.

    `outputs` (:class:`.options.Outputs`): with ``saveimg`` each result folder also gets the
    images, with ``saveplot`` ``registration.gif`` (the optimisation replayed, as ``xvr animate``
    makes it); an existing result folder is refused unless ``overwrite``. `checks`
    (:class:`.options.RunChecks`) is what follows each run (:func:`.one_xray.register_xray`).
    With `shard` ``(rank, world)`` (``torchrun``, :mod:`.shard`), every X-ray is still planned
    and checked, but only this rank's share is registered.
    """
    options = options or RegistrationOptions()
    preprocessing = preprocessing or Preprocessing()
    outputs = outputs or Outputs()
    stop = stop or StopToken()
    outpath = Path(outpath)
    if outpath.exists() and not outpath.is_dir():
        raise XvrInputError(f"-o {outpath}: is a file; give a folder for the results")
    paths = collect_xrays(xrays, pattern)
    folders = plan_outputs(paths, outpath, outputs.overwrite)

    def load(path: Path) -> XRay:
        return read_xray(path, preprocessing.reducefn, **(intrinsic_overrides or {}))

    # every file and its initial pose first, so a bad one fails before any long work; only the
    # poses are kept: images are read again one at a time, so memory does not grow with the count
    inits, detectors = [], []
    for path in paths:
        xray = load(path)
        inits.append(initializer(xray))
        detectors.append(xray.intrinsics)
    subject = spec.read()
    if not init_only:  # the scales must fit every detector: still before any registration
        for path, detector in zip(paths, detectors, strict=True):
            check_stages(options, detector, path)
    drr = spec.make_renderer(subject, detectors[0])
    for path, init, detector in zip(paths, inits, detectors, strict=True):
        if not init_only:  # each start must see the CT before any registration begins
            check_view(drr, init, options, detector, path)
    mine = ready_share(len(paths), shard)
    for index, (path, init, target) in enumerate(zip(paths, inits, folders, strict=True)):
        if stop.stopped:
            break
        if index not in mine:
            continue
        xray = load(path)
        yield XrayStarted(index, len(paths), xray.path)
        yield from register_xray(
            xray,
            drr,
            init,
            spec,
            describe(initializer),
            options,
            preprocessing,
            target,
            init_only=init_only,
            keep_images=outputs.saveimg,
            outputs=outputs,
            checks=checks,
            stop=stop,
        )


def describe(initializer) -> dict:
    """What result.json's ``initialization`` records of an initializer."""
    return getattr(initializer, "describe", lambda: {"type": type(initializer).__name__})()
