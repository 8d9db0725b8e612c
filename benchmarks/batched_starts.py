"""Batched multi-start: LM from 9 starts in lockstep (one batched render per round) against the
same 9 starts one after the other, at the first scale of a multi-start.

``python -m benchmarks.batched_starts [--scale 8] [--starts 9] [--repeats 3]`` on the synthetic
cases of the 2x2x1 chest CT; prints both times, the ratio, and the similarities both reach.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from napari_xvr.geometry import pose_from_dict
from napari_xvr.io.xray import read_xray
from napari_xvr.register.engine import _preparer, stage_intrinsics
from napari_xvr.register.optimiser.lm import PoseLM
from napari_xvr.register.optimiser.multistart import start_poses
from napari_xvr.register.optimiser.similarity import Similarity
from napari_xvr.register.options import RegistrationOptions
from napari_xvr.register.volume_spec import VolumeSpec
from napari_xvr.render import set_intrinsics
from napari_xvr.synthetic import example_volume

from .optimizers import CACHE, case_set


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batched_starts", description=__doc__)
    parser.add_argument("--scale", type=float, default=8.0)
    parser.add_argument("--starts", type=int, default=9, help="the start and N-1 more")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    folder, truth, subject = case_set(10, args.cache)
    ct, _ = example_volume(args.cache, (2, 2, 1))
    spec, options = VolumeSpec(ct), RegistrationOptions()
    itrs = options.scale_list()[0][1]
    times = {"one by one": [], "lockstep": []}
    ends = {"one by one": [], "lockstep": []}
    for name in list(truth["cases"])[: args.repeats]:
        xray = read_xray(folder / f"{name}.dcm")
        drr = spec.make_renderer(subject, xray.intrinsics)
        drr.slab_mm = options.slab_mm
        intr = stage_intrinsics(xray.intrinsics, args.scale, 0)
        set_intrinsics(drr, intr)
        prep = _preparer((intr.height, intr.width), options.equalize)
        solver = PoseLM(
            drr,
            prep(xray.preprocessed().float()),
            prep,
            Similarity(options.patch_size, options.sigma, options.similarity_beta),
            step_mm=intr.delx / 6,
        )
        starts = start_poses(
            pose_from_dict(truth["cases"][name]["true_pose"]),
            args.starts - 1,
            options.multistart_rot,
            options.multistart_xyz,
        )
        t0 = time.perf_counter()
        alone = [
            [s for s in solver.run(start, itrs) if s.accepted][-1].evaluation.similarity for start in starts
        ]
        times["one by one"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        best: dict[int, float] = {}
        for index, step in solver.run_many(starts, itrs):
            if step.accepted:
                best[index] = step.evaluation.similarity
        times["lockstep"].append(time.perf_counter() - t0)
        ends["one by one"] += alone
        ends["lockstep"] += [best[i] for i in range(len(starts))]
    print(
        f"{args.starts} starts at scale {args.scale:g} ({intr.height} x {intr.width} px), "
        f"{args.repeats} X-rays, up to {itrs} LM iterations each"
    )
    for key, values in times.items():
        print(
            f"  {key:10s}: {np.median(values):6.2f} s per X-ray (median), best similarity "
            f"mean {np.mean(ends[key]):.4f}"
        )
    ratio = np.median(times["one by one"]) / np.median(times["lockstep"])
    print(f"lockstep is {ratio:.2f}x as fast as one start after another")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
