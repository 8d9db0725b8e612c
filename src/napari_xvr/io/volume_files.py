"""Volume file names and limits: suffixes, the DICOM magic, and what a plausible volume is."""

from __future__ import annotations

from pathlib import Path

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
#: formats `write_volume` can write as one file (so it can be replaced atomically)
WRITE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
#: the most voxels read from one volume (checked on the header, before any voxel is read)
MAX_VOXELS = 1 << 29
#: plausible voxel spacings (mm): CT/MR voxels are ~0.1-10 mm
VOXEL_SPACING_MM = (1e-3, 100.0)
#: the farthest a volume's origin may lie from the scanner's origin (mm)
MAX_ORIGIN_MM = 1e6


def file_suffix(path: Path) -> str:
    """The lower-case suffix of `path`, with ``.nii.gz`` as one."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def is_dicom_file(path: Path, by_name: bool = True) -> bool:
    """True when `path` has the DICM magic of a Part 10 file; with `by_name`, a DICOM suffix
    or the name DICOMDIR is enough (nothing is read)."""
    if by_name and (file_suffix(path) in DICOM_SUFFIXES or path.name.upper() == "DICOMDIR"):
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"
