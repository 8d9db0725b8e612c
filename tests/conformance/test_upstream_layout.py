"""xvr's benchmark data layout (`subjectNN/xrays/*.dcm`, `volume.nii.gz`, `mask.nii.gz`) and its
published command lines, run unchanged; X-rays made the way xvr assumes (plain DiffDRR's DRR with
xvr's reverse_x_axis=False; DiffDRR's own default is True) register under 1 mm with
`xvr register dicom`'s defaults."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from diffdrr.data import read
from diffdrr.drr import DRR

from napari_xvr.evaluate import mtre
from napari_xvr.geometry import Intrinsics, pose_from_dict, pose_from_zxy
from napari_xvr.io.dicom_write import write_xray_dicom
from napari_xvr.synthetic import detector_counts, random_cases, structure_fiducials

ENV_RUN = {"capture_output": True, "encoding": "utf-8", "errors": "replace", "timeout": 600}
INTR = Intrinsics(sdd=1020.0, height=400, width=400, delx=1.056, dely=1.056)  # 16 px at 1/24


def _xvr(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "napari_xvr.cli", *map(str, args)], **ENV_RUN)


@pytest.fixture(scope="module")
def subject(tmp_path_factory, registration_volume):
    """subject01/ as xvr publishes it, X-rays rendered by DiffDRR's DRR (Siddon) as xvr sets it up."""
    root = tmp_path_factory.mktemp("xvr-data") / "subject01"
    (root / "xrays").mkdir(parents=True)
    ct, mask = registration_volume
    nib.save(nib.load(ct), root / "volume.nii.gz")
    labels = nib.load(mask)
    data = np.asarray(labels.dataobj).astype(np.int16)
    data[data == 5] = 4  # DeepFluoro's masks have labels 1-7; the chest labelmap lacks 4
    nib.save(nib.Nifti1Image(data, labels.affine), root / "mask.nii.gz")
    drr = DRR(
        read(str(root / "volume.nii.gz"), orientation="AP"),
        sdd=INTR.sdd,
        height=INTR.height,
        delx=INTR.delx,
        renderer="siddon",
        reverse_x_axis=False,
    )
    rng = np.random.default_rng(7)
    truth = {}
    for index, case in enumerate(random_cases(2, seed=3)):
        pose = case.true_pose()
        with torch.no_grad():
            image = detector_counts(drr(pose)[0, 0], rng)
        name = f"{index:03d}"
        write_xray_dicom(
            root / "xrays" / f"{name}.dcm", image, INTR, case.header_primary, case.header_secondary, case.sid
        )
        truth[name] = pose.matrix[0].tolist()
    # Ljubljana-style maximum-intensity projection that the published glob leaves out
    write_xray_dicom(root / "xrays" / "000_max.dcm", image, INTR, 0.0, 0.0, 850.0)
    fiducials = structure_fiducials(read(str(root / "volume.nii.gz"), str(root / "mask.nii.gz")))
    return root, truth, fiducials


def _errors(out, subject_) -> dict[str, float]:
    _, truth, fiducials = subject_
    found = {}
    for name, matrix in truth.items():
        result = json.loads((out / name / "result.json").read_text())
        found[name] = mtre(
            pose_from_dict({"matrix": matrix}), pose_from_dict(result["final_pose"]), fiducials
        )
    return found


@pytest.mark.slow
def test_xrays_made_as_xvr_assumes_register_with_dicom_defaults(subject, tmp_path):
    root, *_ = subject
    out = tmp_path / "out"
    run = _xvr(
        "register",
        "dicom",
        root / "xrays",
        "-v",
        root / "volume.nii.gz",
        "-o",
        out,
        "--pattern",
        "[0-9][0-9][0-9].dcm",
        "--verbose",
        "0",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    errors = _errors(out, subject)
    assert max(errors.values()) < 1.0, errors
    # the mirrored renderer, napari-xvr's former default, cannot find these poses
    out = tmp_path / "mirrored"
    run = _xvr(
        "register",
        "dicom",
        root / "xrays" / "000.dcm",
        "-v",
        root / "volume.nii.gz",
        "-o",
        out,
        "--reverse_x_axis",
        "--verbose",
        "0",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert _errors(out, (root, {"000": subject[1]["000"]}, subject[2]))["000"] > 5.0


def _constant_checkpoint(upstream, path, pose) -> None:
    """An upstream-layout checkpoint whose PoseRegressor (upstream's class) always predicts `pose`."""
    import datetime

    from xvr.model.network import PoseRegressor

    config = {
        "model_name": "resnet18",
        "parameterization": "euler_angles",
        "convention": "ZXY",
        "norm_layer": "groupnorm",
        "height": 64,
        "unit_conversion_factor": 1000.0,
        "sdd": INTR.sdd,
        "delx": INTR.delx * INTR.height / 64,
        "orientation": "AP",
        "reverse_x_axis": False,
    }
    model = PoseRegressor(
        **{
            k: config[k]
            for k in (
                "model_name",
                "parameterization",
                "convention",
                "norm_layer",
                "height",
                "unit_conversion_factor",
            )
        }
    )
    rot, xyz = pose.convert("euler_angles", "ZXY")
    with torch.no_grad():
        for head, value in ((model.rot_regression, rot[0]), (model.xyz_regression, xyz[0] / 1000.0)):
            head.weight.zero_()
            head.bias.copy_(value)
    torch.save(
        {
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": {},
            "scheduler_state_dict": {},
            "epoch": 0,
            "date": datetime.datetime.now(),
            "config": config,
        },
        path,
    )


@pytest.mark.slow
def test_published_command_lines_run_unchanged(upstream, subject, tmp_path):
    root, truth, _ = subject
    true = pose_from_dict({"matrix": truth["000"]})
    rot, xyz = pose_from_dict({"matrix": truth["000"]}).convert("euler_angles", "ZXY", degrees=True)
    start = pose_from_zxy(rot[0].numpy() + [3.0, -2.0, 1.0], xyz[0].numpy() + [5.0, -8.0, 4.0])
    ckpt = tmp_path / "subject01.pth"
    _constant_checkpoint(upstream, ckpt, start)
    data = root
    # DeepFluoro, as the reference README writes it (click spellings)
    out = tmp_path / "deepfluoro"
    run = _xvr(
        "register",
        "model",
        data / "xrays",
        "-v",
        data / "volume.nii.gz",
        "-m",
        data / "mask.nii.gz",
        "-c",
        ckpt,
        "-o",
        out,
        "--crop",
        "100",
        "--linearize",
        "--labels",
        "1,2,3,4,7",
        "--scales",
        "24,12,6",
        "--n_itrs",
        "500,500,500",
        "--pattern",
        "*[!_max].dcm",
        "--verbose",
        "0",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    init = pose_from_dict(json.loads((out / "000" / "result.json").read_text())["init_pose"])
    assert mtre(start, init, [[0.0, 0.0, 0.0], [50.0, 20.0, -30.0]]) < 1e-2
    # DeepFluoro and Ljubljana as xvr 0.1.0's scripts write them (cyclopts spellings)
    files = [str(data / "xrays" / "000.dcm")]  # the scripts' shell glob, one X-ray to keep it short
    out = tmp_path / "deepfluoro010"
    run = _xvr(
        "register",
        "model",
        "--files",
        *files,
        "--ckpt",
        ckpt,
        "--imagepath",
        data / "volume.nii.gz",
        "--labelpath",
        data / "mask.nii.gz",
        "--labels",
        1,
        2,
        3,
        4,
        7,
        "--scales",
        24,
        12,
        6,
        "--n-itrs",
        500,
        500,
        500,
        "--patience",
        10,
        10,
        10,
        "--crop",
        100,
        "--linearize",
        "--savepath",
        out,
        "--verbose",
        0,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["000"]
    out = tmp_path / "ljubljana010"
    run = _xvr(
        "register",
        "model",
        "--files",
        *files,
        "--ckpt",
        ckpt,
        "--imagepath",
        data / "volume.nii.gz",
        "--scales",
        16,
        8,
        4,
        "--n-itrs",
        500,
        500,
        500,
        "--patience",
        10,
        10,
        10,
        "--linearize",
        "--subtract-background",
        "--savepath",
        out,
        "--verbose",
        0,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    final = pose_from_dict(json.loads((out / "000" / "result.json").read_text())["final_pose"])
    assert np.isfinite(final.matrix.numpy()).all() and true.matrix.shape == final.matrix.shape
