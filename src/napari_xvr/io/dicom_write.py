"""Write X-ray DICOMs (used for synthetic cases, tests and exports)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np

from ..geometry import Intrinsics
from .atomic import atomic_write_bytes


def _grey16_dataset(name: str, sop_class, modality: str, shape, signed: bool):
    """A new DICOM dataset (uncompressed, fresh SOP instance UID) for 16-bit grey pixels of
    (rows, cols) `shape`, with the synthetic patient; the caller adds the rest."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(name, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName, ds.PatientID = "Synthetic^Phantom", "napari-xvr"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = int(signed)
    return ds


def _file_bytes(ds) -> bytes:
    import io

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


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
    from pydicom.uid import XRayAngiographicImageStorage, generate_uid

    pixels = np.asarray(image)
    if pixels.dtype != np.uint16:
        pixels = np.clip(np.round(pixels), 0, 65535).astype(np.uint16)
    ds = _grey16_dataset(str(path), XRayAngiographicImageStorage, modality, pixels.shape[-2:], False)
    now = _dt.datetime.now()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.ContentTime = now.strftime("%H%M%S")
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
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
    return atomic_write_bytes(path, _file_bytes(ds))


def write_dicom_series(
    volume,
    folder,
    series_uid: str | None = None,
    study_uid: str | None = None,
    series_number: int = 1,
    description: str = "napari-xvr export",
) -> Path:
    """Write a 3D volume (a path SimpleITK reads, or a ``SimpleITK.Image``) as a CT series.

    One uncompressed CT Image Storage file per slice (int16 stored values, HU through
    RescaleIntercept/Slope), with ImagePositionPatient/ImageOrientationPatient/PixelSpacing
    carrying the volume's origin, direction and spacing.  The folder appears atomically.
    """
    import SimpleITK as sitk
    from pydicom.uid import CTImageStorage, generate_uid

    from .atomic import atomic_dir

    image = volume if isinstance(volume, sitk.Image) else sitk.ReadImage(str(volume))
    if image.GetDimension() != 3:
        raise ValueError(f"write_dicom_series needs a 3D image, got {image.GetDimension()}D")
    values = sitk.GetArrayFromImage(image).astype(np.float64)  # (slices, rows, cols)
    lo, hi = float(values.min()), float(values.max())
    slope = 1.0 if lo >= -32768 and hi <= 32767 else (hi - lo) / 65535.0
    intercept = 0.0 if slope == 1.0 else lo + 32768 * slope
    stored = np.round((values - intercept) / slope).clip(-32768, 32767).astype(np.int16)
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    origin = np.asarray(image.GetOrigin(), dtype=float)
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    frame_uid = generate_uid()
    now = _dt.datetime.now()
    orientation = [f"{v:.10g}" for v in (*direction[:, 0], *direction[:, 1])]
    with atomic_dir(folder) as tmp:
        for k in range(stored.shape[0]):
            ds = _grey16_dataset(f"slice_{k:04d}.dcm", CTImageStorage, "CT", stored.shape[1:], True)
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.FrameOfReferenceUID = frame_uid
            ds.StudyDate = ds.SeriesDate = now.strftime("%Y%m%d")
            ds.StudyTime = ds.SeriesTime = now.strftime("%H%M%S")
            ds.SeriesNumber, ds.InstanceNumber = series_number, k + 1
            ds.SeriesDescription = description
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            position = origin + direction[:, 2] * spacing[2] * k
            ds.ImagePositionPatient = [f"{v:.10g}" for v in position]
            ds.ImageOrientationPatient = orientation
            ds.PixelSpacing = [f"{spacing[1]:.10g}", f"{spacing[0]:.10g}"]
            ds.SliceThickness = f"{spacing[2]:.10g}"
            ds.RescaleIntercept, ds.RescaleSlope = f"{intercept:.10g}", f"{slope:.10g}"
            ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
            (tmp / f"slice_{k:04d}.dcm").write_bytes(_file_bytes(ds))
    return Path(folder)
