"""Renderer benchmark: our FastDRR against DiffDRR's trilinear and siddon renderers."""

from __future__ import annotations

import torch
from diffdrr.drr import DRR

from napari_xvr.fastdrr import FastDRR
from napari_xvr.geometry import pose_from_zxy

from .measure import peak_memory, time_calls

POSE = ([20.0, -10.0, 3.0], [8.0, 855.0, -6.0])  # a C-arm-like view (primary, secondary, tertiary)
FOV_MM = 409.6  # detector side: 256 px x 1.6 mm, as the synthetic X-rays


def _forward(drr, pose):
    def run():
        with torch.no_grad():
            return drr(pose)

    return run


def _forward_backward(drr, pose):
    rot0, xyz0 = pose.convert("euler_angles", "ZXY")

    def run():
        rot, xyz = rot0.clone().requires_grad_(), xyz0.clone().requires_grad_()
        from diffdrr.pose import convert

        img = drr(convert(rot, xyz, parameterization="euler_angles", convention="ZXY"))
        img.square().mean().backward()
        return rot.grad

    return run


def bench_renderer(
    subjects: dict, sizes, repeats: int, device: torch.device, siddon_max: int = 128, log=print
) -> list[dict]:
    """One row per (volume, size, renderer): times, peak memory, relative L2 to DiffDRR trilinear."""
    rows = []
    pose = pose_from_zxy(*POSE, device=device)
    for volume, subject in subjects.items():
        shape = tuple(subject.volume.shape[1:])
        for size in sizes:
            kw = dict(sdd=1020.0, height=size, delx=FOV_MM / size, voxel_shift=0.5)
            drrs = {
                "ours": FastDRR(subject, **kw).to(device),
                "diffdrr_trilinear": DRR(subject, renderer="trilinear", **kw).to(device),
            }
            if size <= siddon_max:
                drrs["diffdrr_siddon"] = DRR(subject, renderer="siddon", **kw).to(device)
            with torch.no_grad():
                images = {name: drr(pose) for name, drr in drrs.items()}
            ref = images["diffdrr_trilinear"]
            fwd = time_calls({n: _forward(d, pose) for n, d in drrs.items()}, repeats, device)
            both = time_calls({n: _forward_backward(d, pose) for n, d in drrs.items()}, repeats, device)
            for name, drr in drrs.items():
                rows.append(
                    {
                        "volume": volume,
                        "volume_shape": shape,
                        "size": size,
                        "renderer": name,
                        "forward_s": fwd[name]["min_s"],
                        "forward_median_s": fwd[name]["median_s"],
                        "fwd_bwd_s": both[name]["min_s"],
                        "fwd_bwd_median_s": both[name]["median_s"],
                        "peak_mib": peak_memory(_forward_backward(drr, pose), device),
                        "rel_l2_vs_trilinear": float((images[name] - ref).norm() / ref.norm()),
                    }
                )
                log(
                    f"  renderer {volume} {size}^2 {name}: fwd {rows[-1]['forward_s'] * 1e3:.1f} ms, "
                    f"fwd+bwd {rows[-1]['fwd_bwd_s'] * 1e3:.1f} ms, peak {rows[-1]['peak_mib']:.0f} MiB"
                )
            del drrs, images
    return rows
