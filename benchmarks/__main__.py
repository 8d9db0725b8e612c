"""``python -m benchmarks [--quick] [--json out.json]``: ours against DiffDRR and xvr, one process."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from napari_xvr.device import pick_device
from napari_xvr.io.volume import read_volume
from napari_xvr.synthetic import example_ct, example_mask, example_volume

from .measure import environment
from .realistic import ANATOMIES, bench_realistic
from .registration import CASE_INTRINSICS, bench_registration, make_benchmark_cases, methods
from .renderer import bench_renderer
from .report import summary, tables
from .training import bench_training

SECTIONS = ("renderer", "registration", "realistic", "training")


def parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (~1 min on CPU)")
    parser.add_argument("--json", type=Path, default=Path("benchmark.json"), help="where to write results")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset")
    parser.add_argument("--cases", type=int, default=3, help="synthetic X-rays for registration")
    parser.add_argument(
        "--realistic_cases",
        type=int,
        default=8,
        help="realistic X-rays per anatomy (benchmarks.realistic; --quick: 1 chest)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "napari_xvr_bench",
        help="folder for the downsampled CT and synthetic X-rays",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print(f"unknown section(s) {sorted(unknown)}; use {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    args.cache.mkdir(parents=True, exist_ok=True)
    ct2, mask2 = example_volume(args.cache, (2, 2, 1))
    out = {"environment": environment(device), "quick": args.quick}
    print(
        f"device {out['environment']['device_name']} ({device}), {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}"
    )

    if "renderer" in sections:
        if args.quick:
            ct4, mask4 = example_volume(args.cache, (4, 4, 2))
            subjects = {"ct_4x4x2": read_volume(ct4, mask4)}
            sizes, repeats = (64,), 1
        else:
            subjects = {
                "ct_full": read_volume(example_ct(), example_mask()),
                "ct_2x2x1": read_volume(ct2, mask2),
            }
            sizes, repeats = (64, 128, 256), 3
        out["renderer"] = bench_renderer(subjects, sizes, repeats, device)

    if "registration" in sections:
        if args.quick:  # one small X-ray, a few iterations: checks the plumbing, not the accuracy
            folder = args.cache / "cases_quick"
            truth = make_benchmark_cases(folder, 1, ct2, mask2, CASE_INTRINSICS.rescaled(0.5))
        else:
            folder = args.cache / f"cases_{args.cases}"
            truth = make_benchmark_cases(folder, args.cases, ct2, mask2)
        subject = read_volume(ct2, mask2)
        out["registration"] = bench_registration(subject, folder, truth, methods(args.quick), device)

    if "realistic" in sections:
        anatomies = ["chest"] if args.quick else list(ANATOMIES)
        n = 1 if args.quick else args.realistic_cases
        out["realistic"] = bench_realistic(args.cache / "realistic", anatomies, n, 0, device, verbose=True)

    if "training" in sections:
        subject = read_volume(ct2, mask2)
        settings = [(2, 32, 1)] if args.quick else [(8, 64, 3)]
        if device.type == "cuda" and not args.quick:
            settings.append((116, 128, 3))  # xvr train's default batch at a typical height
        out["training"] = [
            row
            for batch, size, itrs in settings
            for row in bench_training(subject, batch, size, itrs, device)
        ]

    out["summary"] = summary(out)
    out["total_s"] = time.perf_counter() - t_start
    print()
    print(tables(out))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"\nwrote {args.json} ({out['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
