"""A damaged checkpoint or result file is refused: the weights and the poses carry checksums."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_xvr.errors import XvrInputError
from napari_xvr.geometry import Intrinsics
from napari_xvr.io.result import RegistrationResult, read_result, write_result
from napari_xvr.train.checkpoint import load_checkpoint, save_checkpoint, weights_digest
from napari_xvr.train.network import PoseRegressor

CONFIG = {
    "model_name": "test_resnet",
    "parameterization": "euler_angles",
    "convention": "ZXY",
    "norm_layer": "groupnorm1",
    "height": 32,
    "sdd": 1020.0,
    "delx": 12.8,
}


@pytest.fixture()
def checkpoint(tmp_path):
    model = PoseRegressor("test_resnet", "euler_angles", "ZXY", False, 32, "groupnorm1", 1000.0)
    return save_checkpoint(tmp_path / "0000.pth", {"model_state_dict": model.state_dict(), "config": CONFIG})


def test_a_changed_weight_is_refused(checkpoint, tmp_path):
    ckpt = load_checkpoint(checkpoint)
    assert ckpt["weights_sha256"] == weights_digest(ckpt["model_state_dict"])
    name = next(k for k, v in ckpt["model_state_dict"].items() if v.is_floating_point())
    ckpt["model_state_dict"][name].view(-1)[0] += 1e-6  # one value, as a flipped bit would change it
    torch.save(ckpt, tmp_path / "edited.pth")
    with pytest.raises(XvrInputError, match="do not match the checksum .* damaged"):
        load_checkpoint(tmp_path / "edited.pth")


@pytest.mark.parametrize("where", [0.3, 0.5, 0.7, 0.9])
def test_a_flipped_byte_in_the_file_is_refused(checkpoint, tmp_path, where):
    data = bytearray(checkpoint.read_bytes())
    data[int(len(data) * where)] ^= 0x10
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(bytes(data))
    with pytest.raises(XvrInputError):
        load_checkpoint(damaged)


def test_an_edited_pose_in_result_json_is_refused(tmp_path):
    pose = np.eye(4)
    pose[1, 3] = 850.0
    result = RegistrationResult(
        init_pose=pose, final_pose=pose, intrinsics=Intrinsics(1020.0, 64, 64, 6.4, 6.4)
    )
    folder = write_result(result, tmp_path / "x")
    assert read_result(folder)["pose_sha256"]
    data = json.loads((folder / "result.json").read_text())
    data["final_pose"]["matrix"][1][3] = 851.0
    (folder / "result.json").write_text(json.dumps(data))
    with pytest.raises(XvrInputError, match="damaged"):
        read_result(folder)
    del data["pose_sha256"]  # an intended edit, as the message says
    (folder / "result.json").write_text(json.dumps(data))
    assert read_result(folder)["final_pose"]["matrix"][1][3] == 851.0
