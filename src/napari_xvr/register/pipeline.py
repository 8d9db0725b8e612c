"""Register files end to end: read volume and X-rays, initialise, optimise, write results.

`register_files` is a generator of the engine's events plus :class:`XrayStarted` and
:class:`Written`, consumed by the CLI (progress bars), napari and scripts alike.
"""

from __future__ import annotations

import dataclasses
import glob
import math
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from diffdrr.pose import RigidTransform

from .. import defaults
from ..errors import XvrInputError
from ..io.volume import parse_labels, read_volume
from ..io.xray import XRay, read_xray, xray_stem
from ..render import RENDERERS, make_drr
from .engine import Preprocessing, StopToken, check_stages, check_view, register
from .events import Done, Step
from .mirror import check_mirror
from .options import RegistrationOptions
from .result import write_result
from .setup_check import OTHER_ORIENTATION, check_setup
from .shard import ready_share
from .trust import OK, SEVERITY, TRUST_MM, assess


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
    density: str = defaults.reg("density")

    def describe(self) -> dict:
        """What result.json's ``inputs`` records of the volume and the renderer."""
        return {
            "volume": _named(self.volume),
            "mask": None if self.mask is None else _named(self.mask),
            "labels": parse_labels(self.labels),
            "orientation": self.orientation,
            "renderer": self.renderer,
            "density": self.density,
            "reverse_x_axis": self.reverse_x_axis,
            "voxel_shift": self.voxel_shift,
        }

    @classmethod
    def from_inputs(cls, inputs: dict, where: str = "result.json", device=None) -> VolumeSpec:
        """The inverse of :meth:`describe`: the spec a saved result (or track) was registered
        with, for replaying it. What an older or upstream file lacks is taken as then
        (trilinear, voxel centres, AP, unflipped; the density of :func:`result_density`)."""
        from ..io.density import result_density

        volume = inputs.get("volume")
        if not isinstance(volume, str) or not volume:
            raise XvrInputError(
                f"{where}: inputs.volume names no file; it cannot be replayed "
                "(it needs the volume it was registered with)"
            )
        renderer = inputs.get("renderer") or "trilinear"
        if renderer not in RENDERERS:
            raise XvrInputError(
                f"{where}: inputs.renderer {renderer!r} is not one of "
                f"{', '.join(RENDERERS)}; fix it or delete it (trilinear is used)"
            )
        mask = inputs.get("mask") if isinstance(inputs.get("mask"), str) and inputs["mask"] else None
        return cls(
            Path(volume),
            None if mask is None else Path(mask),
            inputs.get("labels") if mask else None,
            inputs.get("orientation") or "AP",
            renderer,
            bool(inputs.get("reverse_x_axis", False)),
            float(inputs.get("voxel_shift", 0.5)),
            device,
            density=result_density(inputs),
        )

    def read(self):
        """The volume (and labelmap) as the renderer takes it (:func:`read_volume`)."""
        return read_volume(self.volume, self.mask, self.labels, self.orientation, density=self.density)

    def make_renderer(self, subject, intrinsics):
        """The DRR module for `subject` with this spec's renderer options."""
        return make_drr(
            subject,
            intrinsics,
            self.renderer,
            self.reverse_x_axis,
            self.voxel_shift,
            self.device,
            **self.drr_kwargs,
        )


def _named(path) -> str:
    """A file's absolute path; a name that is no file (a napari layer's) as it is."""
    path = Path(path)
    return str(path.resolve()) if path.exists() else str(path)


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
    init_only: bool = False,
    saveimg: bool = False,
    stop: StopToken | None = None,
    saveplot: bool = False,
    overwrite: bool = False,
    mirror_check: bool = defaults.reg("mirror_check"),
    trust_mm: float = TRUST_MM,
    retry_starts: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> Iterator:
    """Register every X-ray in `xrays` and write ``outpath/<stem>/``; yields progress events.

    With `saveplot`, each result folder also gets ``registration.gif`` (the optimisation replayed,
    as ``xvr animate`` makes it). With `shard` ``(rank, world)`` (``torchrun``, :mod:`.shard`),
    every X-ray is still planned and checked, but only this rank's share is registered.
    """
    options = options or RegistrationOptions()
    preprocessing = preprocessing or Preprocessing()
    stop = stop or StopToken()
    outpath = Path(outpath)
    if outpath.exists() and not outpath.is_dir():
        raise XvrInputError(f"-o {outpath}: is a file; give a folder for the results")
    paths = collect_xrays(xrays, pattern)
    folders = plan_outputs(paths, outpath, overwrite)

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
            keep_images=saveimg,
            saveimg=saveimg,
            saveplot=saveplot,
            stop=stop,
            mirror_check=mirror_check,
            trust_mm=trust_mm,
            retry_starts=retry_starts,
        )


def _xray_name(xray: XRay) -> str:
    return _named(xray.path) if xray.path else "X-ray"


def describe(initializer) -> dict:
    """What result.json's ``initialization`` records of an initializer."""
    return getattr(initializer, "describe", lambda: {"type": type(initializer).__name__})()


@dataclass(frozen=True)
class Retrying:
    """Automatic recovery: the first run's verdict was not ok; the X-ray is registered again
    from `starts` more starts (``--multistart auto``)."""

    starts: int
    verdict: dict


AUTO_STARTS = 8
"""More starts of ``--multistart auto``'s retry (the capture-range benchmark's 10/10 setting)."""


def stop_requested(stop: StopToken | None) -> bool:
    return stop is not None and stop.stopped


def _attempt(
    xray,
    drr,
    init_pose,
    options,
    preprocessing,
    init_only,
    keep_images,
    stop,
    inputs,
    initialization,
    mirror_check,
    trust_mm,
    relatives=None,
    spec=None,
):
    """One engine run, its mirror check, verdict and, for a result that is not ok, the setup
    check (:mod:`.setup_check`; the other orientation when `spec` is given): yields every event
    but Done; returns the result. A joint registration (`relatives`) has neither check: flipping
    every view does not flip their geometry."""
    result, coarse_best = None, -math.inf
    mirror_check = mirror_check and relatives is None
    for event in register(
        xray,
        drr,
        init_pose,
        options,
        preprocessing,
        init_only,
        keep_images,
        stop,
        inputs,
        initialization,
        relatives=relatives,
    ):
        if isinstance(event, Step) and event.stage == 1 and math.isfinite(event.similarity):
            coarse_best = max(coarse_best, event.similarity)
        if isinstance(event, Done):
            result = event.result
            continue
        yield event
    if result is None:
        return None
    if mirror_check and not init_only and not result.stopped:
        check = check_mirror(xray, drr, init_pose, options, preprocessing, coarse_best, stop)
        if check is not None:
            result.checks["mirror"] = check.to_json()
            yield check
    result.verdict = assess(result, trust_mm).to_json()
    if mirror_check and not init_only and not result.stopped and result.verdict["status"] != OK:
        setup = check_setup(
            xray,
            drr,
            init_pose,
            options,
            preprocessing,
            coarse_best,
            None if spec is None else spec.orientation,
            None if spec is None else lambda: _other_renderer(spec, xray, drr),
            stop,
        )
        if setup is not None:
            result.checks["setup"] = setup.to_json()
            result.verdict = assess(result, trust_mm).to_json()
            yield setup
    return result


def _other_renderer(spec: VolumeSpec, xray: XRay, drr):
    """`drr`'s volume read in the other orientation (AP <-> PA), on the same device."""
    other = dataclasses.replace(spec, orientation=OTHER_ORIENTATION[spec.orientation], device=str(drr.device))
    return other.make_renderer(other.read(), xray.intrinsics)


def register_xray(
    xray: XRay,
    drr,
    init_pose: RigidTransform,
    spec: VolumeSpec,
    initialization: dict,
    options: RegistrationOptions,
    preprocessing: Preprocessing,
    target: Path | None = None,
    *,
    init_only: bool = False,
    keep_images: bool = False,
    saveimg: bool = False,
    saveplot: bool = False,
    stop: StopToken | None = None,
    xray_name: str | None = None,
    mirror_check: bool = defaults.reg("mirror_check"),
    trust_mm: float = TRUST_MM,
    retry_starts: int = 0,
    relatives: list | None = None,
) -> Iterator:
    """Register one X-ray against `drr` (built by ``spec.make_renderer``) from `init_pose`.

    Yields the engine's events (:class:`Stage`, :class:`Step`, :class:`Done`); with a `target`
    folder it then writes the result there, as ``xvr register`` does, and yields
    :class:`Written`. The CLI loops over this for each X-ray; the napari Register widget runs
    it in a worker. `xray_name` is what ``inputs.xray`` records when the X-ray has no file.
    With `mirror_check`, a finished run is followed by the mirrored-input check
    (:mod:`.mirror`): a :class:`MirrorCheck` event, also kept in ``result.checks["mirror"]``;
    a result that is not ok then gets the setup check (:mod:`.setup_check`: upside down, the
    other orientation), a :class:`SetupCheck` event kept in ``result.checks["setup"]``.
    Every result gets a verdict (:mod:`.trust`; suspect above a predicted mTRE of `trust_mm`).
    With `retry_starts` (``--multistart auto``), a result that is not ok is registered again from
    that many more starts (a :class:`Retrying` event) and the better verdict is kept, so easy
    cases cost one plain run (``result.checks["recovery"]`` says what happened).
    A joint registration passes a list of X-rays as `xray` and their `relatives` (see
    :func:`.engine.register`); `init_pose` is then the first view's.
    """
    views = list(xray) if isinstance(xray, list | tuple) else [xray]
    named = xray_name or _xray_name(views[0])
    inputs = {
        "xray": named,
        **spec.describe(),
        "header": views[0].header,
        "pf_to_af": views[0].pf_to_af,
        "device": str(drr.device),
    }
    if len(views) > 1:
        inputs |= {"xrays": [_xray_name(v) for v in views], "headers": [v.header for v in views]}

    def attempt(opts):
        return _attempt(
            xray,
            drr,
            init_pose,
            opts,
            preprocessing,
            init_only,
            keep_images,
            stop,
            inputs,
            initialization,
            mirror_check,
            trust_mm,
            relatives,
            spec,
        )

    result = yield from attempt(options)
    if (
        retry_starts > options.multistart
        and result is not None
        and not init_only
        and not result.stopped
        and result.verdict["status"] != OK
        and not stop_requested(stop)
    ):
        first = result
        yield Retrying(retry_starts, first.verdict)
        retry = yield from attempt(dataclasses.replace(options, multistart=retry_starts))
        if retry is not None:
            better = (SEVERITY[retry.verdict["status"]], -(retry.similarity or -math.inf)) < (
                SEVERITY[first.verdict["status"]],
                -(first.similarity or -math.inf),
            )
            result = retry if better else first
            result.checks["recovery"] = {
                "first_verdict": first.verdict,
                "first_similarity": first.similarity,
                "retried_with_starts": retry_starts,
                "retry_verdict": retry.verdict,
                "retry_similarity": retry.similarity,
                "kept": "retry" if better else "first",
                "seconds": first.runtime_s + retry.runtime_s,
            }
    if result is not None:
        yield Done(result)
    if target is None or result is None:
        return
    target = Path(target)
    # what a killed earlier write left behind: atomic_dir's ".<name>.<8 random chars>.tmp", the
    # 8 chars exact so that another target's ("<name>.1") temporary folder is never taken
    for stale in target.parent.glob(f".{glob.escape(target.name)}.{'[!.]' * 8}.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    folder = write_result(result, target, saveimg=saveimg)
    if saveplot and result.trajectory:
        from ..animate import animate_result

        animate_result(folder, folder / "registration.gif", device=drr.device)
    yield Written(folder, result)
