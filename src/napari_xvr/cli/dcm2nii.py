"""`xvr dcm2nii`: convert a DICOM series (folder, DICOMDIR or one slice) to NIfTI/NRRD/MHA."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import XvrInputError
from ._help import CONTEXT, SectionedCommand, UserPath, section


@click.command(cls=SectionedCommand, context_settings=CONTEXT)
@click.argument("inpath", type=UserPath(exists=True, path_type=Path))
@click.argument("outpath", type=UserPath(path_type=Path), required=False)
@section(
    "Series options",
    click.option(
        "--series",
        "series_uid",
        type=str,
        default=None,
        help="SeriesInstanceUID to convert when the folder holds several "
        "(default: the series with the most slices)",
    ),
    click.option(
        "--list",
        "list_only",
        is_flag=True,
        help="List the series found in INPATH (UID, slice count) and exit",
    ),
    click.option(
        "--overwrite/--no-overwrite",
        default=False,
        help="Replace OUTPATH if it exists (otherwise it is refused before reading)",
    ),
)
def dcm2nii(
    inpath: Path, outpath: Path | None, series_uid: str | None, list_only: bool, overwrite: bool
) -> None:
    """Convert a DICOMDIR to a NIfTI file.

    INPATH is a folder of DICOM slices (searched recursively when it holds none itself), a
    DICOMDIR, or one slice of a series. OUTPATH ends in .nii.gz, .nii, .nrrd or .mha; it is
    written atomically, keeping spacing, origin and direction.
    """
    from ..io.volume import (
        WRITE_SUFFIXES,
        _validate,
        dicom_series,
        file_suffix,
        read_dicom_series,
        write_volume,
    )

    if list_only:
        folder = inpath if inpath.is_dir() else inpath.parent
        found = dicom_series(folder)
        if not found:
            raise XvrInputError(f"{inpath}: no DICOM series found; give a folder of DICOM slices")
        for uid, files in sorted(found.items(), key=lambda kv: -len(kv[1])):
            click.echo(f"{uid}\t{len(files)} files")
        return
    if outpath is None:
        raise click.UsageError("Missing argument 'OUTPATH' (e.g. ct.nii.gz), or pass --list")
    if outpath.is_dir():
        raise XvrInputError(f"{outpath} is a folder; give a file name such as {outpath / 'ct.nii.gz'}")
    if file_suffix(outpath) not in WRITE_SUFFIXES:
        raise XvrInputError(
            f"{outpath}: cannot write {file_suffix(outpath) or '(no suffix)'!r}; name the output "
            ".nii.gz, .nii, .nrrd or .mha"
        )
    if outpath.exists() and not overwrite:
        raise XvrInputError(
            f"{outpath} already exists; pass --overwrite to replace it, or give another OUTPATH"
        )
    image = read_dicom_series(inpath, series_uid)
    _check_volume(image, inpath, _validate)
    write_volume(image, outpath)
    size = "x".join(str(s) for s in image.GetSize())
    spacing = ", ".join(f"{s:.4g}" for s in image.GetSpacing())
    click.echo(f"Wrote {outpath} ({size} voxels, spacing {spacing} mm)")


def _check_volume(image, inpath: Path, validate) -> None:
    """The same checks as the volume reader (3D, finite), on the SimpleITK image."""
    import torch
    import torchio as tio

    data, affine = tio.io.sitk_to_nib(image, keepdim=True)
    validate(tio.ScalarImage(tensor=torch.as_tensor(data), affine=affine), inpath, "volume")


COMMANDS = [dcm2nii]
