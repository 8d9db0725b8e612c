"""The pose regressor: a one-channel timm backbone and two linear heads (rotation, translation).

Submodule names (``backbone``, ``rot_regression``, ``xyz_regression``) match xvr's, so xvr's
published ``model_state_dict`` loads into this module unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from diffdrr.pose import RigidTransform, convert
from diffdrr.registration import N_ANGULAR_COMPONENTS

from ..errors import XvrInputError
from ..geometry import PARAMETERIZATIONS


def _backbone(model_name: str, pretrained: bool, norm_layer: str | None) -> torch.nn.Module:
    import timm

    if not timm.is_model(model_name):
        raise XvrInputError(
            f"--model_name {model_name!r} is not a timm model; e.g. resnet18, resnet34, efficientnet_b0"
        )
    kwargs: dict[str, Any] = {"num_classes": 0, "in_chans": 1}  # timm.create_model's
    if norm_layer:
        from timm.layers import get_norm_layer

        try:
            get_norm_layer(norm_layer)
        except (KeyError, ValueError, AssertionError) as err:
            raise XvrInputError(
                f"--norm_layer {norm_layer!r} is not a timm norm layer; use e.g. "
                "groupnorm, groupnorm1, batchnorm or layernorm2d"
            ) from err
        kwargs["norm_layer"] = norm_layer
    try:
        return timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except TypeError as err:
        raise XvrInputError(
            f"--model_name {model_name}: does not accept --norm_layer {norm_layer!r} ({err}); "
            "try another norm layer or backbone"
        ) from err
    except ValueError as err:
        if "num_groups" in str(err):
            raise XvrInputError(
                f"--norm_layer {norm_layer}: {model_name} has channel counts not divisible by 32 "
                f"({err}); use --norm_layer groupnorm1 or batchnorm, or another backbone"
            ) from err
        raise XvrInputError(f"--model_name {model_name}: cannot build it ({err})") from err
    except Exception as err:  # hub/network/cache errors when pretrained weights are missing
        if pretrained:
            raise XvrInputError(
                f"--pretrained: ImageNet weights for {model_name} are not available offline ({err}). "
                "Put them in the Hugging Face/timm cache (HF_HOME) or train without --pretrained"
            ) from err
        raise


class PoseRegressor(torch.nn.Module):
    """X-ray (B, 1, H, W) -> camera pose (DiffDRR ``RigidTransform``, camera -> world, mm)."""

    def __init__(
        self,
        model_name: str = "resnet18",
        parameterization: str = "quaternion_adjugate",
        convention: str | None = "ZXY",
        pretrained: bool = False,
        height: int = 256,
        norm_layer: str | None = "groupnorm",
        unit_conversion_factor: float = 1000.0,
    ):
        super().__init__()
        if parameterization not in PARAMETERIZATIONS:
            raise XvrInputError(
                f"--parameterization {parameterization!r}: use one of {', '.join(PARAMETERIZATIONS)}"
            )
        self.parameterization = parameterization
        self.convention = convention
        self.unit_conversion_factor = float(unit_conversion_factor)
        self.backbone = _backbone(model_name, pretrained, norm_layer)
        was_training = self.backbone.training
        self.backbone.eval()
        with torch.no_grad():
            n_features = self.backbone(torch.zeros(1, 1, height, height)).shape[-1]
        self.backbone.train(was_training)
        self.rot_regression = torch.nn.Linear(n_features, N_ANGULAR_COMPONENTS[parameterization])
        self.xyz_regression = torch.nn.Linear(n_features, 3)

    def parameters_of(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (rotation, translation in mm) parameters for a batch of images."""
        features = self.backbone(x)
        return self.rot_regression(features), self.unit_conversion_factor * self.xyz_regression(features)

    @torch.no_grad()
    def start_at(self, pose: RigidTransform) -> None:
        """Zero the heads' weights and set their biases so every prediction starts at `pose`."""
        rot, xyz = pose.convert(self.parameterization, self.convention)
        self.rot_regression.weight.zero_()
        self.xyz_regression.weight.zero_()
        self.rot_regression.bias.copy_(rot[0].to(self.rot_regression.bias))
        self.xyz_regression.bias.copy_((xyz[0] / self.unit_conversion_factor).to(self.xyz_regression.bias))

    def forward(self, x: torch.Tensor) -> RigidTransform:
        return self.to_pose(*self.parameters_of(x))

    def to_pose(self, rot: torch.Tensor, xyz: torch.Tensor) -> RigidTransform:
        """Head outputs -> pose in the configured parameterization."""
        rot, xyz = rot.float(), xyz.float()
        if self.parameterization == "euler_angles":
            return convert(rot, xyz, parameterization="euler_angles", convention=self.convention)
        return convert(rot, xyz, parameterization=self.parameterization)


def build_model(spec: dict, pretrained: bool = False) -> PoseRegressor:
    """A regressor from a (normalised) model spec, see :func:`checkpoint.model_spec`."""
    return PoseRegressor(
        model_name=spec["model_name"],
        parameterization=spec["parameterization"],
        convention=spec["convention"],
        pretrained=pretrained,
        height=spec["height"],
        norm_layer=spec["norm_layer"],
        unit_conversion_factor=spec["unit_conversion_factor"],
    )
