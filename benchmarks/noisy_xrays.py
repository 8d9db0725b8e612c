"""LM and Adam on degraded X-rays, whose similarity to the DRR stays far from 1 (as real ones do).

``python -m benchmarks.noisy_xrays --noise 0.5 [--cases 10]`` adds pixel noise and a smooth haze
(``noise`` x the image's standard deviation) to every synthetic X-ray, registers it from its
header with both optimisers (our defaults otherwise) and prints the final similarity and mTRE.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch.nn.functional import interpolate

from napari_xvr.io.xray import XRay, read_xray
from napari_xvr.register.initializers import DicomInitializer

from .optimizers import CACHE, case_set, print_rows, run_both


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
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    folder, truth, subject = case_set(args.cases, args.cache)
    rng = np.random.default_rng(args.seed)

    def prepare(name, _true):
        xray = degrade(read_xray(folder / f"{name}.dcm"), args.noise, rng)
        return xray, DicomInitializer()(xray)

    rows = run_both(folder, truth, subject, prepare)
    print(f"X-rays + noise and haze at {args.noise:g} x their standard deviation")
    print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
