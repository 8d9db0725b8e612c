"""Training throughput: the render work of one xvr training step (targets + differentiable DRRs)."""

from __future__ import annotations

import time

import torch
from diffdrr.drr import DRR
from diffdrr.pose import convert

from napari_xvr.fastdrr import FastDRR

from .measure import _sync

# xvr train's sampling ranges for the examples (degrees, mm) around an AP view at 850 mm
RANGES = {
    "r1": (-30.0, 30.0),
    "r2": (-15.0, 15.0),
    "r3": (-5.0, 5.0),
    "tx": (-25.0, 25.0),
    "ty": (825.0, 875.0),
    "tz": (-25.0, 25.0),
}


def _poses(batch: int, generator: torch.Generator, device):
    lo = torch.tensor([RANGES[k][0] for k in RANGES])
    hi = torch.tensor([RANGES[k][1] for k in RANGES])
    params = lo + (hi - lo) * torch.rand(batch, 6, generator=generator)
    return params[:, :3].deg2rad().to(device), params[:, 3:].to(device)


def _ncc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = (a - a.mean(dim=(-1, -2), keepdim=True)) / (a.std(dim=(-1, -2), keepdim=True) + 1e-6)
    b = (b - b.mean(dim=(-1, -2), keepdim=True)) / (b.std(dim=(-1, -2), keepdim=True) + 1e-6)
    return (a * b).mean()


def bench_training(subject, batch: int, size: int, iterations: int, device, log=print) -> list[dict]:
    """Per renderer: DRRs/s and iterations/s of render(target) + render(prediction) + backward."""
    kw = dict(sdd=1020.0, height=size, delx=409.6 / size, voxel_shift=0.5)
    rows = []
    for name, drr in (
        ("ours", FastDRR(subject, **kw)),
        ("diffdrr_trilinear", DRR(subject, renderer="trilinear", **kw)),
    ):
        drr = drr.to(device)
        generator = torch.Generator().manual_seed(0)
        times = []
        for itr in range(iterations + 1):
            rot, xyz = _poses(batch, generator, device)
            _sync(device)
            t0 = time.perf_counter()
            with torch.no_grad():
                target = drr(convert(rot, xyz, parameterization="euler_angles", convention="ZXY"))
            # stand-in for the network's prediction: the truth plus a small error, with gradient
            pred_rot = (rot + 0.05).requires_grad_()
            pred_xyz = (xyz + 5.0).requires_grad_()
            pred = drr(convert(pred_rot, pred_xyz, parameterization="euler_angles", convention="ZXY"))
            (1 - _ncc(target, pred)).backward()
            _sync(device)
            if itr:  # the first iteration warms up
                times.append(time.perf_counter() - t0)
        per_itr = min(times)
        rows.append(
            {
                "renderer": name,
                "batch": batch,
                "size": size,
                "iterations": iterations,
                "s_per_itr": per_itr,
                "itr_per_s": 1 / per_itr,
                "drr_per_s": 2 * batch / per_itr,
            }
        )
        log(f"  training {name} batch {batch} {size}^2: {rows[-1]['drr_per_s']:.1f} DRRs/s")
    return rows
