"""The scales default: `8,4,2` (the baseline) against `8,4,2,1` (ours), header initialisation.

``python -m benchmarks.scales [--cases 10] [--seeds 0 1 2]`` renders the synthetic case sets (as
``xvr demo``: Siddon from the full chest CT, 256 px, noisy, headers up to 3 deg off), registers
each with LM at both scale schedules in one run and prints xvr's mTRE, successes (< 1 mm) and
seconds per X-ray, with the ratio ours / baseline.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from napari_xvr.defaults import N_ITRS
from napari_xvr.io.xray import read_xray
from napari_xvr.register.initializers import DicomInitializer
from napari_xvr.register.options import RegistrationOptions
from napari_xvr.synthetic import make_cases

from .optimizers import CACHE, case_set, print_rows, run_both

#: the baseline's caps are the defaults' first three
SCHEDULES = {"8,4,2": ",".join(N_ITRS["lm"].split(",")[:3]), "8,4,2,1": N_ITRS["lm"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scales", description=__doc__)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    _, _, subject = case_set(args.cases)
    every = {name: [] for name in SCHEDULES}
    for seed in args.seeds:
        folder = CACHE / f"demo_cases_{args.cases}_seed{seed}"  # as `xvr demo`: the full CT
        if not (folder / "truth.json").exists():
            make_cases(folder, n=args.cases, seed=seed)
        truth = json.loads((folder / "truth.json").read_text())

        def prepare(name, true, folder=folder):
            xray = read_xray(folder / f"{name}.dcm")
            return xray, DicomInitializer()(xray)

        rows = run_both(
            folder,
            truth,
            subject,
            prepare,
            options=lambda s: RegistrationOptions(scales=s, n_itrs=SCHEDULES[s]),
            methods=tuple(SCHEDULES),
        )
        print(f"seed {seed}:")
        print_rows(rows)
        for name, out in rows.items():
            every[name] += out
    print(f"all {sum(len(v) for v in every.values()) // len(every)} cases:")
    print_rows(every)
    base, ours = (np.array(every[s]) for s in SCHEDULES)
    print(
        f"ratio 8,4,2,1 / 8,4,2: max mTRE {ours[:, 1].max() / base[:, 1].max():.2f}, "
        f"seconds {ours[:, 3].mean() / base[:, 3].mean():.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
