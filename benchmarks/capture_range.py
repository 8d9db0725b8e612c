"""Capture range: LM and Adam from far starting poses on the synthetic cases.

``python -m benchmarks.capture_range --rot 15 --xyz 50 [--cases 10]`` starts every case at its
true pose plus uniform offsets of up to ``rot`` degrees and ``xyz`` mm per axis (seeded) and
registers it with LM, LM with ``--multistart`` (default 8) and Adam (our defaults otherwise);
prints mTRE and success (< 1 mm).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from napari_xvr.geometry import pose_from_zxy, pose_to_zxy
from napari_xvr.io.xray import read_xray
from napari_xvr.register.options import RegistrationOptions

from .optimizers import CACHE, case_set, print_rows, run_both


def _options(method: str, scales: str | None) -> RegistrationOptions:
    """Our defaults (other `scales` get the optimiser's caps, as the CLI gives them).

    `method` is an optimiser name, or ``lm+N`` for LM with ``multistart=N``."""
    optimizer, _, n_more = method.partition("+")
    extra = {"multistart": int(n_more)} if n_more else {}
    if scales:
        extra["scales"] = scales
    return RegistrationOptions(optimizer=optimizer, **extra)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capture_range", description=__doc__)
    parser.add_argument("--rot", type=float, default=15.0, help="max offset per angle (deg)")
    parser.add_argument("--xyz", type=float, default=50.0, help="max offset per axis (mm)")
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scales", default=None, help="registration scales (default: ours)")
    parser.add_argument(
        "--multistart", type=int, default=8, help="also run LM with --multistart N (0: only lm and adam)"
    )
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    folder, truth, subject = case_set(args.cases, args.cache)
    rng = np.random.default_rng(args.seed)

    def prepare(name, true):
        rot, xyz = pose_to_zxy(true)
        start = pose_from_zxy(rot + args.rot * rng.uniform(-1, 1, 3), xyz + args.xyz * rng.uniform(-1, 1, 3))
        return read_xray(folder / f"{name}.dcm"), start

    methods = ("lm", f"lm+{args.multistart}", "adam") if args.multistart else ("lm", "adam")
    rows = run_both(folder, truth, subject, prepare, lambda m: _options(m, args.scales), methods)
    print(f"starts: truth + U(-{args.rot:g}, {args.rot:g}) deg, U(-{args.xyz:g}, {args.xyz:g}) mm per axis")
    print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
