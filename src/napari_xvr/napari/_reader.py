"""npe2 readers: volumes, labelmaps, DICOM series folders, X-ray DICOMs, result folders, the
``name.json`` (+ ``name.csv``) results our writer saves and upstream xvr's registration ``.pth``
files (other ``.pth`` files, e.g. checkpoints, are not ours).

The npe2 contract, as napari-xvr keeps it:

- ``get_reader`` never raises and reads nothing heavy: it returns None for paths that are not
  ours (no such path, a broken symlink or a loop, an unknown suffix, a folder with neither a
  result.json nor DICOM files, a ``.pth`` or ``.json`` that is not a registration result);
- once a path is claimed, the reader either returns layers or raises
  :class:`~napari_xvr.errors.XvrInputError` with one line that names the file, what is wrong and
  the fix (napari shows it and offers another reader); never a library's exception, never an
  allocation larger than the memory budget (checked from the headers first, see
  :func:`napari_xvr.memory.check_memory`).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import XvrInputError
from ..geometry import grid_placement
from ._layers import KIND, check_volume_memory, drr_layer_kwargs, volume_layers, xray_layer
from ._reader_kinds import _dicom_files, _kind, _paths

NULL_LAYER = [(None,)]  # napari's sentinel for "read fine, nothing to show"
#: result.json files larger than this are not results (ours are a few kB)
MAX_RESULT_BYTES = 64 << 20
#: the most detector pixels the reader renders a result's final DRR at (larger ones are resampled)
MAX_DRR_PX = 1024 * 1024


def get_reader(path):
    """Return a reader for `path` when it is something napari-xvr reads, else None."""
    try:
        paths = _paths(path)
        if paths is None:
            return None
        if any(_kind(Path(p)) is None for p in paths):
            return None
    except Exception:  # get_reader must never raise
        return None
    return read_paths


def read_paths(path) -> list:
    """Read each of `path` (one path or a list) into layers; see the module's contract."""
    paths = _paths(path)
    if paths is None:
        raise XvrInputError(f"{path!r}: not a file path; give a path (str or pathlib.Path)")
    layers = []
    for item in paths:
        layers.extend(read_one(Path(item).expanduser()))
    return layers


def _names(path: Path, message: str) -> bool:
    return str(path) in message or path.name in message


def read_one(path: Path) -> list:
    """The layers of one claimed path; any failure is an XvrInputError that names `path`."""
    kind = _kind(path)
    if kind is None:
        raise XvrInputError(
            f"{path}: napari-xvr does not read this (no such file, or not a volume, "
            "X-ray DICOM, result folder/.json, xvr .pth or session); check the path"
        )
    readers = {
        "volume": _read_volume,
        "xray": _read_xray,
        "folder": _read_folder,
        "upstream": upstream_layers,
        "result": result_layers,
        "session": _read_session,
    }
    try:
        if path.is_file():
            if path.stat().st_size == 0:
                raise XvrInputError(f"{path}: the file is empty (0 bytes); copy it again")
            if not os.access(path, os.R_OK):
                raise XvrInputError(
                    f"{path}: no permission to read it; make it readable "
                    "(chmod +r) or copy it somewhere you can read"
                )
        layers = readers[kind](path)
    except XvrInputError as err:
        if _names(path, str(err)):
            raise
        raise XvrInputError(f"{path}: {err}") from err
    except MemoryError as err:
        raise XvrInputError(
            f"{path}: too large to open with the memory this machine has free; "
            "downsample it or close other programs"
        ) from err
    except Exception as err:  # torchio, SimpleITK, pydicom, nibabel, imageio raise many kinds
        from ..io._messages import one_line

        raise XvrInputError(
            f"{path}: cannot read it ({type(err).__name__}: {one_line(err, 200)}); "
            "the file may be truncated or damaged, copy it again"
        ) from err
    if not layers:
        raise XvrInputError(f"{path}: holds nothing napari-xvr can show")
    return layers


def _read_session(path: Path) -> list:
    """A session's layers, named as saved; the last carries the session's path, so that the DRR
    and pose widget sets the pose, history and options back when it sees it."""
    from ..session import read_session

    session = read_session(path)
    layers = []
    for entry in session.layers:
        for data, kwargs, kind in read_one(Path(entry["path"])):
            if kwargs.get("metadata", {}).get(KIND) in ("volume", "labels", "xray"):
                kwargs = {**kwargs, "name": entry["name"]}
            layers.append((data, kwargs, kind))
    if layers:
        data, kwargs, kind = layers[-1]
        layers[-1] = (
            data,
            {**kwargs, "metadata": {**kwargs.get("metadata", {}), "xvr_session": str(path.resolve())}},
            kind,
        )
    return layers


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)  # napari shows warnings as notifications


def _read_volume(path: Path) -> list:
    """A CT/MR volume (Image) or labelmap (Labels) in world mm."""
    return volume_layers(path)


def _read_xray(path: Path) -> list:
    """An X-ray DICOM (frames kept as a stack) with its intrinsics in metadata."""
    from ..io.xray import read_xray

    xray = read_xray(path)
    return [xray_layer(xray, frames=xray.frames)]


def _read_folder(path: Path) -> list:
    """A registration result folder, a DICOM series (volume) or a folder of X-ray DICOMs."""
    if (path / "result.json").is_file():
        return result_layers(path)
    files = _dicom_files(path)
    if not files:
        raise XvrInputError(
            f"{path}: no result.json and no DICOM files in this folder; open the files themselves"
        )
    try:
        return volume_layers(path)
    except XvrInputError as series_error:
        layers, failed = [], []
        for file in files:
            try:
                layers.extend(read_one(file))
            except XvrInputError as err:
                failed.append(str(err))
        if not layers:
            raise XvrInputError(
                f"{path}: neither a DICOM series ({series_error}) nor a folder of X-rays ({failed[0]})"
            ) from series_error
        if failed:
            _warn(
                f"napari-xvr opened {len(layers)} X-ray(s) of {path} and skipped "
                f"{len(failed)}: {'; '.join(failed[:3])}"
            )
        return layers


def upstream_layers(path: Path) -> list:
    """An upstream xvr ``<stem>.pth``: its X-ray (``gt``) with the pose and result in metadata."""
    from ..geometry import Intrinsics
    from ..io.upstream import load_upstream, upstream_image, upstream_to_json
    from ..io.xray import XRay

    raw = load_upstream(path)
    data = upstream_to_json(raw, path)
    image = upstream_image(raw)
    if image is None:
        raise XvrInputError(
            f"{path}: holds no X-ray image ('gt' is empty); the pose is in the file, "
            "read it with `xvr export` or open the X-ray itself"
        )
    if not np.isfinite(image).all():
        raise XvrInputError(
            f"{path}: its X-ray ('gt') has NaN or infinite pixels; the file is damaged, save it again"
        )
    xray = XRay(image=image, intrinsics=Intrinsics(**data["intrinsics"]))
    layer = xray_layer(xray, name=f"{path.stem} X-ray")
    layer[1]["metadata"].update(
        {"pose": data["final_pose"], "result": data, "result_path": str(path.resolve()), "trajectory": []}
    )
    return [layer]


def _trajectory(file: Path) -> list[dict]:
    """The trajectory saved beside a result file; [] (with a warning) when absent or damaged."""
    from ..io.result import read_trajectory, trajectory_file

    if not trajectory_file(file).is_file():
        return []
    try:
        return read_trajectory(file)
    except (XvrInputError, OSError) as err:
        _warn(f"napari-xvr opened {file} without its trajectory: {err}")
        return []


def _input_file(inputs: dict, key: str) -> Path | None:
    value = inputs.get(key)
    if not isinstance(value, str) or not value:
        return None
    path = Path(value).expanduser()
    return path if path.exists() else None


def result_layers(folder: Path) -> list:
    """X-ray, final DRR (an overlay) and pose of a result folder written by `xvr register`, or of
    a ``name.json`` the writer saved (its trajectory in ``name.csv``)."""
    from ..geometry import Intrinsics
    from ..io.result import read_result, result_pose

    folder = Path(folder)
    file = folder / "result.json" if folder.is_dir() else folder
    if file.stat().st_size > MAX_RESULT_BYTES:
        raise XvrInputError(
            f"{file}: {file.stat().st_size} bytes is far more than a result.json; "
            "the file is damaged or not a result"
        )
    data = read_result(file)
    if not isinstance(data.get("intrinsics"), dict):
        raise XvrInputError(
            f"{file}: has no 'intrinsics' (sdd, height, width, delx, dely); write "
            "the result again with xvr register"
        )
    pose = result_pose(data)
    name = folder.name if folder.is_dir() else file.stem
    meta = {
        "pose": data.get("final_pose") or data["init_pose"],
        "result": data,
        "result_path": str(folder.resolve()),
        "trajectory": _trajectory(file),
    }
    layers = []
    inputs = data.get("inputs") or {}
    intr = Intrinsics(**data["intrinsics"])
    xray_path = _input_file(inputs, "xray")
    if xray_path is not None and xray_path.is_file():
        try:
            layer = _read_xray(xray_path)[0]
        except XvrInputError as err:
            _warn(f"napari-xvr opened {file} without its X-ray: {err}")
        else:
            layer[1]["metadata"].update(meta)
            layer[1]["name"] = f"{name} X-ray"
            layers.append(layer)
    drr = _result_drr(file, inputs, intr, pose)
    if drr is not None:
        image, shown = drr
        kwargs = drr_layer_kwargs(f"{name} final DRR", shown, meta, overlay=True)
        # a resampled DRR covers the same detector: its pixel centres shift by half a pixel
        kwargs["translate"] = grid_placement(
            (intr.height, intr.width),
            (intr.dely, intr.delx),
            (shown.height, shown.width),
            (shown.dely, shown.delx),
        )[1]
        layers.append((image, kwargs, "image"))
        if len(layers) == 2:  # green X-ray under the magenta DRR, as the registration view:
            layers[0][1]["colormap"] = "green"  # aligned parts turn grey, not a pink wash
    if not layers:
        raise XvrInputError(
            f"{file}: neither the X-ray ({inputs.get('xray')}) nor final_drr.png nor the volume "
            f"({inputs.get('volume')}) can be found; the pose is in the result's JSON"
        )
    return layers


def _render_intrinsics(intr, renderer: str, volume_shape):
    """`intr` resampled so that the render stays under MAX_DRR_PX and the memory budget."""
    from ..animate import panel_intrinsics
    from ..memory import check_memory, memory_budget, render_bytes

    per_px = render_bytes(1, 1, renderer, volume_shape)
    allowed = min(MAX_DRR_PX, memory_budget() // max(per_px, 1))
    pixels = intr.height * intr.width
    if pixels <= allowed:
        return intr
    side = max(intr.height, intr.width) * math.sqrt(allowed / pixels)
    shown = panel_intrinsics(intr, max(16, int(side)))
    check_memory(
        render_bytes(shown.height, shown.width, renderer, volume_shape),
        f"rendering the final DRR ({shown.height}x{shown.width} px)",
        "close other programs",
    )
    return shown


def _result_drr(file: Path, inputs: dict, intr, pose):
    """(image, the intrinsics it is drawn with) of the final DRR, or None without volume or PNG."""

    png = file.with_name("final_drr.png") if file.name == "result.json" else None
    volume = _input_file(inputs, "volume")
    if volume is not None:
        from ..register.volume_spec import VolumeSpec
        from ..render import render

        # the spec it was registered with; a labelmap that is gone: the whole volume
        mask = _input_file(inputs, "mask")
        spec = VolumeSpec.from_inputs(
            {**inputs, "volume": str(volume), "mask": None if mask is None else str(mask)}, str(file), "cpu"
        )
        check_volume_memory(volume)
        subject = spec.read()
        shown = _render_intrinsics(intr, spec.renderer, tuple(subject.volume.shape[1:]))
        drr = spec.make_renderer(subject, shown)
        return render(drr, pose)[0, 0].numpy().astype(np.float32), shown
    if png is not None and png.is_file():
        return _read_png(png, intr)
    return None


def _read_png(png: Path, intr):
    from dataclasses import replace

    from PIL import Image

    from ..memory import check_memory

    with Image.open(png) as img:
        width, height = img.size
    check_memory(
        width * height * 16,
        f"{png} ({height}x{width} px)",
        "the file is damaged or not the final_drr.png xvr writes; delete it",
    )
    import imageio.v3 as iio

    image = np.asarray(iio.imread(png), dtype=np.float32)
    if image.ndim == 3:
        image = image[..., :3].mean(axis=-1)
    shown = replace(
        intr,
        height=max(2, image.shape[0]),
        width=max(2, image.shape[1]),
        dely=intr.dely * intr.height / image.shape[0],
        delx=intr.delx * intr.width / image.shape[1],
    )
    return image, shown


# the names earlier versions exported (one reader reads every kind now)
read_volumes = read_xrays = read_folders = read_upstream_results = read_paths

__all__ = [
    "KIND",
    "get_reader",
    "read_folders",
    "read_one",
    "read_paths",
    "read_upstream_results",
    "read_volumes",
    "read_xrays",
    "result_layers",
    "upstream_layers",
]
