"""LM and Adam on degraded X-rays, whose similarity to the DRR stays far from 1 (as real ones do).

``python -m benchmarks.noisy_xrays --noise 0.5 [--cases 10]`` adds pixel noise and a smooth haze
(``noise`` x the image's standard deviation) to every synthetic X-ray, registers it from its
header with both optimisers (our defaults otherwise) and prints the final similarity and mTRE.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.nn.functional import interpolate

from napari_xvr.geometry import pose_from_dict
from napari_xvr.io.volume import read_volume
from napari_xvr.io.xray import XRay, read_xray
from napari_xvr.register.engine import register, run_to_end
from napari_xvr.register.initializers import DicomInitializer
from napari_xvr.register.options import RegistrationOptions
from napari_xvr.render import make_drr
from napari_xvr.synthetic import example_volume

from .registration import make_benchmark_cases, mtre


def degrade(xray: XRay, noise: float, rng: np.random.Generator) -> XRay:
    """`xray` plus white noise and a smooth haze, each `noise` x the image's standard deviation."""
    img = torch.as_tensor(xray.image, dtype=torch.float64)
    coarse = torch.as_tensor(rng.normal(size=(1, 1, 8, 8)))
    haze = interpolate(coarse, size=img.shape, mode="bicubic", align_corners=False)[0, 0]
    haze = haze / haze.std()
    white = torch.as_tensor(rng.normal(size=img.shape))
    noisy = img + noise * img.std() * (white + 0.5 * haze)
    return dataclasses.replace(xray, image=noisy.float().numpy())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.noisy_xrays", description=__doc__)
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "napari_xvr_bench")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    ct, mask = example_volume(args.cache, (2, 2, 1))
    folder = args.cache / f"cases_{args.cases}"
    truth = make_benchmark_cases(folder, args.cases, ct, mask)
    subject = read_volume(ct, mask)
    rng = np.random.default_rng(args.seed)
    rows = {"lm": [], "adam": []}
    for name, case in truth["cases"].items():
        xray = degrade(read_xray(folder / f"{name}.dcm"), args.noise, rng)
        drr = make_drr(subject, xray.intrinsics, renderer="fast")
        true = pose_from_dict(case["true_pose"])
        for optimizer, out in rows.items():
            result = run_to_end(register(xray, drr, DicomInitializer()(xray),
                                         RegistrationOptions(optimizer=optimizer)))
            out.append((mtre(result.final_pose, true, truth["fiducials_mm"]), result.similarity,
                        result.runtime_s))
    print(f"X-rays + noise and haze at {args.noise:g} x their standard deviation")
    for optimizer, out in rows.items():
        v = np.array(out)
        print(f"{optimizer:5s} similarity {v[:, 1].mean():.3f} | mTRE median {np.median(v[:, 0]):.2f} "
              f"max {v[:, 0].max():.2f} mm | under 1 mm {int((v[:, 0] < 1).sum())}/{len(v)} | "
              f"{v[:, 2].mean():.2f} s per X-ray")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
