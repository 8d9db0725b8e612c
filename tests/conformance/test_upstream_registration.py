"""napari-xvr next to upstream xvr 0.1.0's own code: X-ray reading, DRRs, initial poses, metrics.

Upstream's functions run on the CPU (its `device` arguments); nothing of upstream's is
re-implemented here. X-rays are made with plain DiffDRR's DRR set up as xvr does
(reverse_x_axis=False, where DiffDRR's own default is True), not with napari-xvr's renderer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffdrr.data import read
from diffdrr.drr import DRR

from napari_xvr.geometry import Intrinsics, pose_from_zxy
from napari_xvr.io import read_volume, read_xray
from napari_xvr.io.dicom_write import write_xray_dicom
from napari_xvr.register.initializers import DicomInitializer, FixedInitializer
from napari_xvr.render import make_drr

INTR = Intrinsics(sdd=1020.0, height=96, width=80, delx=3.2, dely=3.2)
POSE_ROT, POSE_XYZ = [12.0, -7.0, 2.0], [6.0, 845.0, -9.0]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def upstream_drr_xrays(tmp_path_factory, example_volume):
    """X-ray DICOMs rendered by DiffDRR's DRR with xvr's reverse_x_axis=False."""
    folder = tmp_path_factory.mktemp("upstream_xrays")
    subject = read(str(example_volume[0]), orientation="AP")
    drr = DRR(
        subject,
        sdd=INTR.sdd,
        height=INTR.height,
        width=INTR.width,
        delx=INTR.delx,
        dely=INTR.dely,
        renderer="siddon",
        reverse_x_axis=False,
    )
    with torch.no_grad():
        img = drr(pose_from_zxy(POSE_ROT, POSE_XYZ))[0, 0].numpy()
    counts = (img / img.max() * 3000 + 100).astype(np.uint16)
    files = {
        "single": write_xray_dicom(folder / "single.dcm", counts, INTR, 10.0, -5.0, 850.0),
        "offset": write_xray_dicom(
            folder / "offset.dcm",
            counts,
            Intrinsics(INTR.sdd, INTR.height, INTR.width, 3.2, 3.0, 4.5, -2.0),
            -3.0,
            8.0,
            830.0,
        ),
        "pf": write_xray_dicom(
            folder / "pf.dcm", counts, INTR, -20.0, 4.0, 840.0, patient_orientation=("P", "F")
        ),
        "frames": write_xray_dicom(
            folder / "frames.dcm", np.stack([counts, counts[::-1], counts // 2 + 7]), INTR, 15.0, 0.0, 860.0
        ),
    }
    return files


@pytest.mark.parametrize("name", ["single", "offset", "pf", "frames"])
@pytest.mark.parametrize(
    "crop,subtract_background,linearize",
    [
        (0, False, False),
        (0, False, True),
        (10, True, False),
        (6, True, True),
    ],
)
def test_xray_reading_and_preprocessing_match_upstream(
    upstream, upstream_drr_xrays, name, crop, subtract_background, linearize
):
    from xvr.io import read_xray as upstream_read

    path = upstream_drr_xrays[name]
    for reducefn in ["max", "sum", 1] if name == "frames" else ["max"]:
        theirs, intr, pf_to_af = upstream_read(path, crop, subtract_background, linearize, reducefn)
        xray = read_xray(path, reducefn)
        ours = xray.preprocessed(crop, subtract_background, linearize)
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
        assert xray.pf_to_af == pf_to_af == (name == "pf")
        mine = xray.intrinsics
        # upstream keeps the DICOM column offset and negates it when it builds the DRR
        assert (mine.sdd, mine.delx, mine.dely, mine.y0) == pytest.approx(
            (intr.sdd, intr.delx, intr.dely, intr.y0)
        )
        assert mine.x0 == pytest.approx(-intr.x0)


def test_pydicom_test_files_read_as_upstream(upstream, tmp_path):
    """pydicom's own test images, given X-ray geometry tags, read and preprocess as upstream's."""
    import pydicom
    from pydicom.data import get_testdata_file
    from xvr.io import read_xray as upstream_read

    for name in ("MR_small_RLE.dcm", "JPEGLSNearLossless_16.dcm", "JPEG2000.dcm", "rtdose.dcm"):
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.Modality = "XA"
        ds.DistanceSourceToDetector = "1000"
        ds.ImagerPixelSpacing = ["0.5", "0.5"]
        for tag in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"):
            if tag in ds:
                delattr(ds, tag)
        path = tmp_path / name
        ds.save_as(path)
        theirs, intr, _ = upstream_read(path, 4, True, True, "max")
        ours = read_xray(path).preprocessed(4, True, True)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def _upstream_register(upstream, ct, initializer, path):
    from xvr.register import Register

    return Register(initializer=initializer, imagepath=str(ct), device="cpu")(str(path), init_only=True)


def test_drr_matches_upstream_drr(upstream, upstream_drr_xrays, example_volume):
    """Same volume, pose and intrinsics: upstream's DRR (from its own Register) and ours."""
    from xvr.register import FixedPose

    path = upstream_drr_xrays["offset"]
    result = _upstream_register(
        upstream, example_volume[0], FixedPose(POSE_ROT, POSE_XYZ, device="cpu"), path
    )
    pose = pose_from_zxy(POSE_ROT, POSE_XYZ)
    with torch.no_grad():
        theirs = result.drr(pose)
    xray = read_xray(path)
    subject = read_volume(example_volume[0], density="diffdrr")  # upstream reads as DiffDRR
    with torch.no_grad():
        same = make_drr(subject, xray.intrinsics, renderer="trilinear", voxel_shift=0.0)(pose)
        fast = make_drr(subject, xray.intrinsics, renderer="fast", voxel_shift=0.0)(pose)
        ours = make_drr(subject, xray.intrinsics)(pose)  # every default of ours
    assert not result.drr.detector.reverse_x_axis
    assert _rel(same, theirs) < 1e-3
    assert _rel(fast, theirs) < 5e-3
    # with each tool's defaults the DRRs differ only by our voxel-centre shift (0.5 against 0;
    # 3.5e-2 with these 2.8 x 2.8 x 5 mm voxels), far less than a mirrored DRR would (3.1e-1)
    assert _rel(ours, theirs) < 0.2 * _rel(ours.flip(-1), theirs)


def test_initial_poses_match_upstream(upstream, upstream_drr_xrays, example_volume):
    from xvr.register import DicomPose, FixedPose
    from xvr.register.context import XrayContext

    for name, path in upstream_drr_xrays.items():
        xray = read_xray(path)
        ctx = XrayContext(filename=path, img=torch.zeros(1, 1, 2, 2), intrinsics=None)
        for orientation in ("AP", "PA"):
            theirs = DicomPose(orientation=orientation, device="cpu")(ctx)
            ours = DicomInitializer(orientation)(xray)
            torch.testing.assert_close(ours.matrix, theirs.matrix, atol=1e-4, rtol=1e-5, msg=name)
    theirs = FixedPose([20.0, -10.0, 5.0], [3.0, 830.0, -4.0], device="cpu")(ctx)
    ours = FixedInitializer("20,-10,5", "3,830,-4")(xray)
    torch.testing.assert_close(ours.matrix, theirs.matrix, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("reverse_x_axis", [False, True])
def test_metrics_are_upstreams_definitions(example_volume, reverse_x_axis):
    """xvr's evaluator (experiments/evaluate.py) on DiffDRR's projection functions, against ours."""
    from diffdrr.metrics import DoubleGeodesicSE3

    from napari_xvr.evaluate import evaluate_poses

    intr = Intrinsics(sdd=1020.0, height=128, width=128, delx=2.0, dely=2.0, x0=3.0, y0=-4.0)
    drr = DRR(
        read(str(example_volume[0]), orientation="AP"),
        sdd=intr.sdd,
        height=intr.height,
        delx=intr.delx,
        x0=intr.x0,
        y0=intr.y0,
        reverse_x_axis=reverse_x_axis,
    )
    fiducials = torch.tensor([[0.0, 0.0, 0.0], [50.0, -20.0, 30.0], [-40.0, 60.0, -80.0]])[None]
    true = pose_from_zxy([10.0, 5.0, 1.0], [2.0, 850.0, -3.0])
    pred = pose_from_zxy([13.0, 3.5, -1.0], [9.0, 870.0, 4.0])
    x = drr.perspective_projection(pred, fiducials)
    y = drr.perspective_projection(true, fiducials)
    mpe = (intr.delx * (x - y)).norm(dim=-1).mean()
    mrpe = (
        (drr.inverse_projection(pred, x.clone()) - drr.inverse_projection(true, y.clone()))
        .norm(dim=-1)
        .mean()
    )
    mtre = (pred(fiducials) - true(fiducials)).norm(dim=-1).mean()
    *_, dgeo = DoubleGeodesicSE3(intr.sdd, eps=0.0)(true, pred)
    ours = evaluate_poses(true, pred, fiducials[0].numpy(), intr, "AP", reverse_x_axis)
    assert ours.mtre == pytest.approx(float(mtre), rel=1e-4)
    assert ours.mpe == pytest.approx(float(mpe), rel=1e-4)
    assert ours.mrpe == pytest.approx(float(mrpe), rel=1e-3)
    assert ours.geodesic_mm == pytest.approx(float(dgeo[0]), rel=1e-4)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_a_ct_or_mr_slice_is_refused_as_an_xray(name, tmp_path):
    """Upstream reads pydicom's CT_small.dcm as an X-ray; napari-xvr says to pass it with -v."""
    from pydicom.data import get_testdata_file

    from napari_xvr.errors import XvrInputError

    with pytest.raises(XvrInputError, match=r"not an X-ray projection; pass CT/MR volumes with -v"):
        read_xray(get_testdata_file(name))
