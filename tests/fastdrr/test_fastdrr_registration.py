"""The registration engine with renderer="fast" recovers a synthetic X-ray of the chest CT."""

from __future__ import annotations

import pytest
import torch

from napari_xvr import evaluate
from napari_xvr.geometry import pose_from_dict, pose_from_matrix
from napari_xvr.io.volume import read_volume
from napari_xvr.io.xray import read_xray
from napari_xvr.register.engine import register, run_to_end
from napari_xvr.register.initializers import DicomInitializer
from napari_xvr.register.options import RegistrationOptions
from napari_xvr.render import make_drr
from napari_xvr.synthetic import DENSITY


@pytest.mark.slow
def test_fast_renderer_registers_a_synthetic_case_below_1mm(synthetic_cases, registration_volume):
    folder, truth = synthetic_cases
    subject = read_volume(*registration_volume, density=DENSITY)  # as DiffDRR made the X-ray
    xray = read_xray(folder / "xray_000.dcm")
    drr = make_drr(subject, xray.intrinsics, renderer="fast")
    options = RegistrationOptions(scales="4,2", n_itrs="300,150", xray_mask="off")  # CT alone
    result = run_to_end(register(xray, drr, DicomInitializer()(xray), options))
    fiducials = torch.tensor(truth["fiducials_mm"], dtype=torch.float32)
    true = pose_from_dict(truth["cases"]["xray_000"]["true_pose"])

    def mtre(matrix) -> float:
        return evaluate.mtre(true, pose_from_matrix(matrix), fiducials)

    assert mtre(result.init_pose) > 5.0
    assert mtre(result.final_pose) < 1.0, (mtre(result.init_pose), mtre(result.final_pose))
