"""CPU bar for training: a patient-specific model on the downsampled example CT, then `register model`.

    python benchmarks/train_cpu.py --out /tmp/train_cpu --itrs 300

1. writes synthetic X-ray cases (as the core's accuracy tests) and the 4x4x2-downsampled CT;
2. trains resnet18 on 64 px DRRs for `--itrs` iterations and reports the wall time;
3. mTRE of the sampling prior's centre vs the model's prediction for each held-out X-ray;
4. runs `xvr register model` (CLI, subprocess) on the 2x2x1 CT and reports the final mTRE.
Timings are noisy: the machine's cores are shared.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_xvr import evaluate
from napari_xvr.geometry import Intrinsics, pose_from_dict, pose_from_matrix
from napari_xvr.io import read_xray
from napari_xvr.synthetic import example_volume, make_cases
from napari_xvr.train import TrainConfig, TrainStep, train
from napari_xvr.train.model_init import ModelInitializer
from napari_xvr.train.sampler import prior_centre

RANGES = {"r1": (-30, 30), "r2": (-15, 15), "r3": (-2, 2), "tx": (-15, 15), "ty": (810, 890), "tz": (-15, 15)}


def mtre(pred, true, fiducials) -> float:
    return evaluate.mtre(true, pred, fiducials)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/train_cpu")
    ap.add_argument("--itrs", type=int, default=300)
    ap.add_argument("--cases", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ckpt", default=None, help="skip training: evaluate this checkpoint")
    ap.add_argument("--model_name", default="resnet18")
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--renderer", default="trilinear")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    ct, _ = example_volume(out / "volume", (4, 4, 2))
    ct_reg, _ = example_volume(out / "volume2", (2, 2, 1))
    cases = out / "cases"
    if not (cases / "truth.json").exists():
        make_cases(
            cases,
            n=args.cases,
            seed=0,
            intrinsics=Intrinsics(sdd=1020.0, height=128, width=128, delx=3.2, dely=3.2),
        )
    truth = json.loads((cases / "truth.json").read_text())
    fid = torch.tensor(truth["fiducials_mm"], dtype=torch.float32)

    config = TrainConfig(
        volpath=str(ct),
        outpath=str(out / f"model_{args.itrs}"),
        **RANGES,
        batch_size=args.batch_size,
        model_name=args.model_name,
        renderer=args.renderer,
        sdd=1020.0,
        height=64,
        delx=6.4,
        n_points=128,
        lr=args.lr,
        n_total_itrs=args.itrs,
        n_warmup_itrs=20,
        n_grad_accum_itrs=1,
        n_save_every_itrs=100,
        n_drr_every_itrs=0,
        seed=0,
    )
    tic, last = time.perf_counter(), None
    for event in [] if args.ckpt else train(config):
        if isinstance(event, TrainStep):
            last = event
            if event.itr % 25 == 0:
                print(
                    f"itr {event.itr:4d} loss {event.loss:.3f} ncc {event.ncc:.3f} geo {event.geo:.1f} "
                    f"({time.perf_counter() - tic:.0f} s)",
                    flush=True,
                )
    train_s = time.perf_counter() - tic
    if args.ckpt:
        ckpt = Path(args.ckpt)
    else:
        ckpt = sorted((out / f"model_{args.itrs}").glob("*.pth"))[-1]
        print(f"trained {args.itrs} itrs in {train_s:.0f} s; last loss {last.loss:.3f}; checkpoint {ckpt}")

    init = ModelInitializer(ckpt, volume=ct_reg)
    centre = prior_centre(RANGES)
    rows = []
    for name, case in sorted(truth["cases"].items()):
        true = pose_from_dict(case["true_pose"])
        pred = init(read_xray(cases / f"{name}.dcm"))
        rows.append((name, mtre(centre, true, fid), mtre(pred, true, fid)))
        print(f"{name}: prior centre mTRE {rows[-1][1]:7.2f} mm  model {rows[-1][2]:7.2f} mm")
    prior, model = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    print(
        f"mean mTRE: prior centre {prior.mean():.2f} mm, model {model.mean():.2f} mm "
        f"(median {np.median(prior):.2f} / {np.median(model):.2f})"
    )

    reg_out = out / f"registered_{args.itrs}"
    tic = time.perf_counter()
    subprocess.run(
        [
            str(Path(sys.executable).parent / "xvr"),
            "register",
            "model",
            str(cases),
            "-c",
            str(ckpt),
            "-v",
            str(ct_reg),
            "-o",
            str(reg_out),
            "--verbose",
            "0",
        ],
        check=True,
    )
    reg_s = time.perf_counter() - tic
    finals = []
    for name, case in sorted(truth["cases"].items()):
        result = json.loads((reg_out / name / "result.json").read_text())
        final = pose_from_matrix(result["final_pose"]["matrix"])
        finals.append(mtre(final, pose_from_dict(case["true_pose"]), fid))
        print(f"{name}: registered mTRE {finals[-1]:.3f} mm")
    print(
        f"register model: {len(finals)} cases in {reg_s:.0f} s; max mTRE {max(finals):.3f} mm, "
        f"all < 1 mm: {all(f < 1 for f in finals)}"
    )


if __name__ == "__main__":
    main()
