"""Write X-ray DICOMs (used for synthetic cases, tests and exports)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np

from ..geometry import Intrinsics
from .atomic import atomic_write_bytes


def write_xray_dicom(
    path,
    image: np.ndarray,
    intrinsics: Intrinsics,
    primary_angle: float | None = None,
    secondary_angle: float | None = None,
    source_to_patient: float | None = None,
    modality: str = "XA",
    patient_orientation: tuple[str, str] | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a single-frame (H, W) or multi-frame (F, H, W) uint16 X-ray DICOM, atomically.

    Geometry tags follow what :func:`napari_xvr.io.read_xray` reads back: the DICOM
    DetectorActiveOrigin column offset is ``-intrinsics.x0`` (xvr's sign convention).
    """
    import io

    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, XRayAngiographicImageStorage, generate_uid

    pixels = np.asarray(image)
    if pixels.dtype != np.uint16:
        pixels = np.clip(np.round(pixels), 0, 65535).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = XRayAngiographicImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    now = _dt.datetime.now()
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = "Synthetic^Phantom"
    ds.PatientID = "napari-xvr"
    ds.StudyDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.ImagerPixelSpacing = [f"{intrinsics.dely:.6g}", f"{intrinsics.delx:.6g}"]
    ds.DistanceSourceToDetector = f"{intrinsics.sdd:.6g}"
    ds.DetectorActiveOrigin = [f"{intrinsics.y0:.6g}", f"{-intrinsics.x0:.6g}"]
    if source_to_patient is not None:
        ds.DistanceSourceToPatient = f"{source_to_patient:.6g}"
    if primary_angle is not None:
        ds.PositionerPrimaryAngle = f"{primary_angle:.6g}"
    if secondary_angle is not None:
        ds.PositionerSecondaryAngle = f"{secondary_angle:.6g}"
    if patient_orientation is not None:
        ds.PatientOrientation = list(patient_orientation)
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return atomic_write_bytes(path, buffer.getvalue())
