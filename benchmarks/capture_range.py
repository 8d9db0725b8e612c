"""Capture range: LM and Adam from far starting poses on the synthetic cases.

``python -m benchmarks.capture_range --rot 15 --xyz 50 [--cases 10]`` starts every case at its
true pose plus uniform offsets of up to ``rot`` degrees and ``xyz`` mm per axis (seeded) and
registers it with both optimisers (our defaults otherwise); prints mTRE and success (< 1 mm).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from napari_xvr.geometry import pose_from_dict, pose_from_zxy, pose_to_zxy
from napari_xvr.io.volume import read_volume
from napari_xvr.io.xray import read_xray
from napari_xvr.register.engine import register, run_to_end
from napari_xvr.register.options import DEFAULT_ITRS, RegistrationOptions
from napari_xvr.render import make_drr
from napari_xvr.synthetic import example_volume

from .registration import make_benchmark_cases, mtre


def _options(optimizer: str, scales: str | None) -> RegistrationOptions:
    """Our defaults; extra coarse `scales` get the optimiser's first-scale iteration cap."""
    if not scales:
        return RegistrationOptions(optimizer=optimizer)
    itrs = DEFAULT_ITRS[optimizer].split(",")
    n = len(scales.split(","))
    itrs = [itrs[0]] * max(0, n - len(itrs)) + itrs[-n:]
    return RegistrationOptions(optimizer=optimizer, scales=scales, n_itrs=",".join(itrs))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capture_range", description=__doc__)
    parser.add_argument("--rot", type=float, default=15.0, help="max offset per angle (deg)")
    parser.add_argument("--xyz", type=float, default=50.0, help="max offset per axis (mm)")
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scales", default=None, help="registration scales (default: ours)")
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
        xray = read_xray(folder / f"{name}.dcm")
        drr = make_drr(subject, xray.intrinsics, renderer="fast")
        true = pose_from_dict(case["true_pose"])
        rot, xyz = pose_to_zxy(true)
        start = pose_from_zxy(rot + args.rot * rng.uniform(-1, 1, 3), xyz + args.xyz * rng.uniform(-1, 1, 3))
        before = mtre(start.matrix[0].numpy(), true, truth["fiducials_mm"])
        for optimizer, out in rows.items():
            result = run_to_end(register(xray, drr, start, _options(optimizer, args.scales)))
            out.append((before, mtre(result.final_pose, true, truth["fiducials_mm"]), result.runtime_s))
    print(f"starts: truth + U(-{args.rot:g}, {args.rot:g}) deg, U(-{args.xyz:g}, {args.xyz:g}) mm per axis")
    for optimizer, out in rows.items():
        v = np.array(out)
        success = int((v[:, 1] < 1).sum())
        print(f"{optimizer:5s} initial mTRE mean {v[:, 0].mean():5.1f} mm | final median "
              f"{np.median(v[:, 1]):.2f} max {v[:, 1].max():.2f} mm | under 1 mm {success}/{len(v)} | "
              f"{v[:, 2].mean():.2f} s per X-ray")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
