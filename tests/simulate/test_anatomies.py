"""The realistic benchmark's other anatomies: a cut abdomen and a skull built around
TotalSegmentator's brain atlas make DICOMs that read back with their truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_xvr.geometry import pose_from_dict
from napari_xvr.io import read_volume, read_xray
from napari_xvr.simulate.cases import make_realistic_cases


@pytest.mark.parametrize("anatomy", ["abdomen", "skull"])
def test_a_case_reads_back_with_its_truth(tmp_path, anatomy):
    if anatomy == "skull":
        pytest.importorskip("totalsegmentator", reason="pip install --no-deps TotalSegmentator")
    truth_path = make_realistic_cases(tmp_path / "cases", anatomy, 1, seed=0, cache=tmp_path / "volumes")
    truth = json.loads(truth_path.read_text())
    ((name, case),) = truth["cases"].items()
    xray = read_xray(tmp_path / "cases" / f"{name}.dcm")
    assert xray.intrinsics.height == case["intrinsics"]["height"]
    image = np.asarray(xray.image, dtype=np.float64)
    assert np.isfinite(image).all() and image.std() > 0.01 * np.ptp(image)
    # the volume registration uses reads, and the fiducials lie in it
    subject = read_volume(truth["volume"], truth["mask"])
    affine = np.asarray(subject.volume.affine)
    ijk = (np.asarray(truth["fiducials_mm"]) - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
    assert len(ijk) >= 8 and (ijk > -1).all() and (ijk < np.asarray(subject.volume.shape[1:])).all()
    pose = pose_from_dict(case["true_pose"]).matrix[0].numpy()
    assert np.allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-5)
