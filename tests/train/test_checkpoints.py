"""Safe loading of our checkpoints and of xvr's layout; clear errors for bad ones."""

from __future__ import annotations

import datetime
import pickle

import pytest
import timm
import torch
from diffdrr.pose import convert

from napari_xvr.errors import XvrInputError
from napari_xvr.train.checkpoint import load_checkpoint, load_model, save_checkpoint


class XvrStyleRegressor(torch.nn.Module):
    """Written here from xvr's documented layout: timm backbone, rot/xyz heads, metres -> mm."""

    def __init__(self, model_name, parameterization, convention, norm_layer, height):
        super().__init__()
        self.parameterization, self.convention = parameterization, convention
        self.backbone = timm.create_model(model_name, False, num_classes=0, in_chans=1, norm_layer=norm_layer)
        n = self.backbone(torch.zeros(1, 1, height, height)).shape[-1]
        self.xyz_regression = torch.nn.Linear(n, 3)
        self.rot_regression = torch.nn.Linear(n, 10 if parameterization == "quaternion_adjugate" else 3)

    def forward(self, x):
        f = self.backbone(x)
        return convert(
            self.rot_regression(f),
            1000 * self.xyz_regression(f),
            convention=self.convention,
            parameterization=self.parameterization,
        )


def _xvr_checkpoint(path, parameterization="quaternion_adjugate"):
    torch.manual_seed(3)
    net = XvrStyleRegressor("test_resnet", parameterization, "ZXY", "groupnorm1", 32).eval()
    optim = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(optim, 10)
    config = {
        "volpath": "/data/ct.nii.gz",
        "maskpath": None,
        "outpath": "/models",
        "alphamin": -30.0,
        "alphamax": 30.0,
        "sdd": 1020.0,
        "height": 32,
        "delx": 12.8,
        "orientation": "AP",
        "reverse_x_axis": True,
        "unit_conversion_factor": 1000.0,
        "parameterization": parameterization,
        "convention": "ZXY",
        "model_name": "test_resnet",
        "pretrained": False,
        "norm_layer": "groupnorm1",
        "patch_size": None,
        "weights": None,
        "lr": 1e-3,
    }
    torch.save(
        {
            "model_state_dict": net.state_dict(),
            "optimizer_state_dict": optim.state_dict(),
            "scheduler_state_dict": sched.state_dict(),
            "itr": 1000,
            "model_number": 1,
            "date": datetime.datetime(2025, 3, 1, 12, 0),
            "config": config,
        },
        path,
    )
    return net


@pytest.mark.parametrize("parameterization", ["quaternion_adjugate", "euler_angles"])
def test_xvr_checkpoint_loads_safely_and_predicts_identically(tmp_path, parameterization):
    net = _xvr_checkpoint(tmp_path / "xvr.pth", parameterization)
    with pytest.raises(pickle.UnpicklingError):  # plain weights_only refuses the datetime ...
        torch.load(tmp_path / "xvr.pth", weights_only=True)
    model, spec, ckpt = load_model(tmp_path / "xvr.pth")  # ... our allow-list takes only that
    assert isinstance(ckpt["date"], datetime.datetime) and spec["height"] == 32
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x).matrix, net(x).matrix, atol=1e-5)


def test_our_checkpoint_is_plain_weights_only(tmp_path):
    path = save_checkpoint(
        tmp_path / "a.pth",
        {
            "model_state_dict": {"w": torch.ones(2)},
            "itr": 3,
            "config": {"x": 1},
            "date": "2025-01-01T00:00:00",
        },
    )
    assert torch.load(path, weights_only=True)["itr"] == 3
    assert not list(tmp_path.glob(".*tmp"))  # nothing half-written left behind


class Evil:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_bad_checkpoints_give_clear_errors(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(XvrInputError, match="not a torch.save archive"):
        load_checkpoint(tmp_path / "junk.pth")
    torch.save({"model_state_dict": {}, "config": {}, "payload": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(XvrInputError, match="refused to load, it needs unpickling"):
        load_checkpoint(tmp_path / "evil.pth")
    torch.save({"model_state_dict": {}}, tmp_path / "noconfig.pth")
    with pytest.raises(XvrInputError, match="lacks config"):
        load_checkpoint(tmp_path / "noconfig.pth")
    torch.save({"model_state_dict": {}, "config": {"model_name": "resnet18"}}, tmp_path / "partial.pth")
    with pytest.raises(XvrInputError, match="parameterization"):
        load_checkpoint(tmp_path / "partial.pth")
    _xvr_checkpoint(tmp_path / "ok.pth")
    ckpt = torch.load(tmp_path / "ok.pth", weights_only=False)
    ckpt["config"]["model_name"] = "resnet18"
    torch.save(ckpt, tmp_path / "mismatch.pth")
    with pytest.raises(XvrInputError, match="do not fit"):
        load_model(tmp_path / "mismatch.pth")
    full = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(full[: len(full) // 2])
    with pytest.raises(XvrInputError, match="not a torch.save archive|cannot read it"):
        load_checkpoint(tmp_path / "cut.pth")
