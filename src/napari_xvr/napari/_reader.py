"""npe2 readers: volumes, labelmaps, DICOM series folders, X-ray DICOMs, result folders and
upstream xvr's registration ``.pth`` files (other ``.pth`` files, e.g. checkpoints, are not ours).

``get_reader`` never raises: it returns None for paths that are not ours, and the reader it
returns turns any failure into a napari notification that says why (and an empty result).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import XvrInputError
from ._layers import KIND, dicom_frames, drr_layer_kwargs, volume_layers, xray_layer

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
XRAY_SUFFIXES = (".dcm", ".dicom")
UPSTREAM_SUFFIX = ".pth"
NULL_LAYER = [(None,)]  # napari's sentinel for "read fine, nothing to show"


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _notify_error(path, err: Exception) -> None:
    from napari.utils.notifications import show_error

    why = str(err) if isinstance(err, XvrInputError) else f"{type(err).__name__}: {err}"
    show_error(f"napari-xvr could not open {path}: {why}")


def _guarded(read):
    def reader(path):
        paths = path if isinstance(path, list) else [path]
        layers = []
        for item in paths:
            try:
                layers.extend(read(Path(item)))
            except Exception as err:  # every failure becomes a notification, never a crash
                _notify_error(item, err)
        return layers or NULL_LAYER

    reader.__doc__ = read.__doc__
    return reader


def _is_dicom_file(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def get_reader(path):
    """Return a reader for `path` when it is something napari-xvr reads, else None."""
    try:
        paths = path if isinstance(path, list) else [path]
        kinds = {_kind(Path(p)) for p in paths}
    except Exception:
        return None
    if len(kinds) != 1 or None in kinds:
        return None
    readers = {"volume": read_volumes, "xray": read_xrays, "folder": read_folders,
               "upstream": read_upstream_results}
    return readers[kinds.pop()]


def _kind(path: Path) -> str | None:
    if path.is_dir():
        return "folder"
    suffix = _suffix(path)
    if suffix in VOLUME_SUFFIXES:
        return "volume"
    if suffix in XRAY_SUFFIXES:
        return "xray"
    if suffix == UPSTREAM_SUFFIX:
        from ..io.upstream import looks_like_upstream_result

        return "upstream" if looks_like_upstream_result(path) else None
    return None


def _read_volume(path: Path) -> list:
    """A CT/MR volume (Image) or labelmap (Labels) in world mm."""
    return volume_layers(path)


def _read_xray(path: Path) -> list:
    """An X-ray DICOM (frames kept as a stack) with its intrinsics in metadata."""
    from ..io.xray import read_xray

    xray = read_xray(path)
    return [xray_layer(xray, frames=dicom_frames(path, xray))]


def _read_folder(path: Path) -> list:
    """A registration result folder, a DICOM series (volume) or a folder of X-ray DICOMs."""
    if (path / "result.json").is_file():
        return result_layers(path)
    files = sorted(p for p in path.iterdir() if p.is_file() and _is_dicom_file(p))
    if not files:
        raise XvrInputError(f"{path}: no result.json and no DICOM files in this folder")
    try:
        return volume_layers(path)
    except XvrInputError:
        layers = []
        for file in files:
            layers.extend(_read_xray(file))
        return layers


read_volumes = _guarded(_read_volume)
read_xrays = _guarded(_read_xray)
read_folders = _guarded(_read_folder)


def upstream_layers(path: Path) -> list:
    """An upstream xvr ``<stem>.pth``: its X-ray (``gt``) with the pose and result in metadata."""
    from ..geometry import Intrinsics
    from ..io.upstream import load_upstream, upstream_image, upstream_to_json
    from ..io.xray import XRay

    raw = load_upstream(path)
    data = upstream_to_json(raw, path)
    image = upstream_image(raw)
    if image is None:
        raise XvrInputError(f"{path}: holds no X-ray image ('gt' is empty); the pose is in the file, "
                            "read it with `xvr export` or open the X-ray itself")
    xray = XRay(image=image, intrinsics=Intrinsics(**data["intrinsics"]))
    layer = xray_layer(xray, name=f"{path.stem} X-ray")
    layer[1]["metadata"].update({"pose": data["final_pose"], "result": data,
                                 "result_path": str(path.resolve()), "trajectory": []})
    return [layer]


read_upstream_results = _guarded(upstream_layers)


def result_layers(folder: Path) -> list:
    """X-ray, final DRR (an overlay) and pose of a result folder written by `xvr register`."""
    from ..geometry import Intrinsics
    from ..register.result import read_result, read_trajectory, result_pose

    data = read_result(folder)
    pose = result_pose(data)
    meta = {"pose": data.get("final_pose") or data["init_pose"], "result": data,
            "result_path": str(folder.resolve())}
    try:
        meta["trajectory"] = read_trajectory(folder)
    except XvrInputError:
        meta["trajectory"] = []
    layers = []
    inputs = data.get("inputs", {})
    xray_path = inputs.get("xray")
    intr = Intrinsics(**data["intrinsics"])
    if xray_path and Path(xray_path).is_file():
        layer = _read_xray(Path(xray_path))[0]
        layer[1]["metadata"].update(meta)
        layer[1]["name"] = f"{folder.name} X-ray"
        layers.append(layer)
    drr = _result_drr(folder, inputs, intr, pose)
    if drr is not None:
        kwargs = drr_layer_kwargs(f"{folder.name} final DRR", intr, meta, overlay=True)
        layers.append((drr, kwargs, "image"))
    if not layers:
        raise XvrInputError(
            f"{folder}: neither the X-ray ({xray_path}) nor final_drr.png nor the volume "
            f"({inputs.get('volume')}) can be found; the pose is in result.json"
        )
    return layers


def _result_drr(folder: Path, inputs: dict, intr, pose) -> np.ndarray | None:
    png = folder / "final_drr.png"
    volume = inputs.get("volume")
    if volume and Path(volume).exists():
        from ..io.volume import read_volume
        from ..render import make_drr, render

        subject = read_volume(volume, inputs.get("mask"), inputs.get("labels"),
                              inputs.get("orientation", "AP"))
        drr = make_drr(subject, intr, inputs.get("renderer", "trilinear"),
                       inputs.get("reverse_x_axis", False), inputs.get("voxel_shift", 0.5), "cpu")
        return render(drr, pose)[0, 0].numpy().astype(np.float32)
    if png.is_file():
        import imageio.v3 as iio

        return np.asarray(iio.imread(png), dtype=np.float32)
    return None


__all__ = ["KIND", "get_reader", "read_folders", "read_upstream_results", "read_volumes", "read_xrays",
           "result_layers", "upstream_layers"]
