"""CPU bar for training: a patient-specific model on the downsampled example CT, then `register model`.

    python -m benchmarks.train_cpu --out /tmp/train_cpu --itrs 300
    python -m benchmarks.train_cpu --threads 2 --minutes 13 --curve --cases 20 --json curve.json
    python -m benchmarks.train_cpu --from_json curve.json --doc docs/training.md

1. writes synthetic X-ray cases (as the core's accuracy tests) and the 4x4x2-downsampled CT;
2. trains resnet18 with the core's CPU recipe (``xvr train --recipe cpu``: 64 px DRRs, batch 16,
   the fast renderer, 2000 iterations unless `--itrs`) and reports the wall time;
3. mTRE of the sampling prior's centre vs the model's prediction for each held-out X-ray;
4. runs `xvr register model` (CLI, subprocess) on the 2x2x1 CT and reports the final mTRE.

`--minutes` stops the training after that much wall time (a last checkpoint is written);
`--curve` evaluates every checkpoint (one per 100 iterations): the initial poses' mTRE against
training minutes, and the share within 20 mm (LM's capture range).
Timings are noisy: the machine's cores are shared.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from napari_xvr.register.events import StopToken
from napari_xvr.synthetic import downsample_volume, example_volume, make_cases
from napari_xvr.train import Checkpointed, TrainConfig, TrainStep, train
from napari_xvr.train.model_init import ModelInitializer
from napari_xvr.train.recipes import cpu_recipe as cpu_recipe_of
from napari_xvr.train.sampler import prior_centre

from .measure import environment

RANGES = {"r1": (-30, 30), "r2": (-15, 15), "r3": (-2, 2), "tx": (-15, 15), "ty": (810, 890), "tz": (-15, 15)}


def mtre(pred, true, fiducials) -> float:
    return evaluate.mtre(true, pred, fiducials)


PIXEL_MM = {"chest": 1.6, "head": 1.0}
"""The held-out X-rays' pixel (256 px): 1.6 mm as `xvr demo`'s chest, 1.0 mm for a skull film."""


def _anatomy(args, out: Path) -> tuple[Path, Path, Path]:
    """(the CT to train on, the CT to register with, the held-out cases' folder) of
    `args.anatomy`: the example chest CT (4x4x2 and 2x2x1 downsampled) or the head built around
    TotalSegmentator's brain atlas (:mod:`napari_xvr.simulate`; 3 mm and 1 mm voxels), its
    X-rays made by DiffDRR's Siddon renderer."""
    pixel = PIXEL_MM[args.anatomy]
    intrinsics = Intrinsics(sdd=1020.0, height=256, width=256, delx=pixel, dely=pixel)
    cases = out / "cases"
    if args.anatomy == "chest":
        ct, _ = example_volume(out / "volume", (4, 4, 2))
        ct_reg, _ = example_volume(out / "volume2", (2, 2, 1))
        volume = fiducials = None
    else:
        from napari_xvr.simulate.anatomy import prepare

        head = prepare("head", out / "volume")
        ct, ct_reg = out / "volume" / "head_ct_3mm.nii.gz", head.registration_ct
        volume, fiducials = head.truth_ct, head.fiducials_mm
        if not ct.exists():
            downsample_volume(head.truth_ct, ct, (3, 3, 3))
    if not (cases / "truth.json").exists():
        make_cases(cases, n=args.cases, seed=0, intrinsics=intrinsics, volume=volume, fiducials=fiducials)
    return ct, ct_reg, cases


def cpu_recipe(args, ct: Path, outpath: Path) -> TrainConfig:
    """The core's CPU recipe (:func:`napari_xvr.train.recipes.cpu_recipe`) for the field of view
    of the held-out X-rays (256 px), with the options `args` gives (None: the recipe's)."""
    base = TrainConfig(
        volpath=str(ct),
        outpath=str(outpath),
        **RANGES,
        model_name=args.model_name,
        sdd=1020.0,
        height=256,
        delx=PIXEL_MM[getattr(args, "anatomy", "chest")],
        n_drr_every_itrs=0,
        seed=0,
    )
    config = cpu_recipe_of(base)
    given = {
        "batch_size": args.batch_size,
        "lr": args.lr,
        "renderer": args.renderer,
        "n_total_itrs": args.itrs,
    }
    return dataclasses.replace(config, **{k: v for k, v in given.items() if v is not None})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/train_cpu")
    ap.add_argument("--anatomy", choices=sorted(PIXEL_MM), default="chest", help="the CT (chest or head)")
    ap.add_argument("--itrs", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--cases", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ckpt", default=None, help="skip training: evaluate this checkpoint")
    ap.add_argument("--model_name", default="resnet18")
    ap.add_argument("--batch_size", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--lr", type=float, default=None, help="default: the recipe's")
    ap.add_argument("--renderer", default=None, help="default: the recipe's")
    ap.add_argument("--minutes", type=float, default=None, help="stop training after this long")
    ap.add_argument("--curve", action="store_true", help="evaluate every checkpoint, not only the last")
    ap.add_argument("--json", default=None, help="write the curve and the registration's errors here")
    ap.add_argument("--from_json", default=None, help="no run: the --doc block from this --json")
    ap.add_argument("--doc", default=None, help="fill this page's train_cpu block")
    args = ap.parse_args()
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        if args.doc:
            from .report import replace_block

            block = "train_cpu" if data["args"].get("anatomy", "chest") == "chest" else "train_cpu_head"
            replace_block(Path(args.doc), block, doc_block(data))
        print(doc_block(data))
        return
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    ct, ct_reg, cases = _anatomy(args, out)
    truth = json.loads((cases / "truth.json").read_text())
    fid = torch.tensor(truth["fiducials_mm"], dtype=torch.float32)

    config = cpu_recipe(args, ct, out / "model")
    config = dataclasses.replace(config, outpath=str(out / f"model_{config.n_total_itrs}"))
    args.itrs, args.batch_size = config.n_total_itrs, config.batch_size  # what ran, for --json
    args.lr, args.renderer = config.lr, config.renderer
    tic, last, stop, saved = time.perf_counter(), None, StopToken(), []
    for event in [] if args.ckpt else train(config, stop, overwrite=True):
        if args.minutes is not None and time.perf_counter() - tic > 60 * args.minutes:
            stop.stop()
        if isinstance(event, Checkpointed):
            saved.append((event.path, event.itr, time.perf_counter() - tic))
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

    xrays = {name: read_xray(cases / f"{name}.dcm") for name in sorted(truth["cases"])}
    trues = {name: pose_from_dict(case["true_pose"]) for name, case in truth["cases"].items()}
    curve = []
    if args.curve:
        print("minutes  itr  median mTRE  mean mTRE  within 20 mm")
        for path, itr, seconds in saved:
            init = ModelInitializer(path, volume=ct_reg)
            errors = np.array([mtre(init(xrays[n]), trues[n], fid) for n in xrays])
            curve.append(
                {
                    "minutes": seconds / 60,
                    "itr": itr,
                    "median_mm": float(np.median(errors)),
                    "mean_mm": float(errors.mean()),
                    "within_20mm": float(np.mean(errors < 20)),
                }
            )
            c = curve[-1]
            print(
                f"{c['minutes']:7.1f} {itr:4d} {c['median_mm']:12.2f} {c['mean_mm']:10.2f} "
                f"{100 * c['within_20mm']:11.0f} %",
                flush=True,
            )
    init = ModelInitializer(ckpt, volume=ct_reg)
    centre = prior_centre(RANGES)
    rows = []
    for name in xrays:
        true = trues[name]
        pred = init(xrays[name])
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
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "args": vars(args),
                    "command": " ".join(sys.argv[1:]),
                    "cpu": environment(torch.device("cpu"))["device_name"],
                    "train_s": train_s,
                    "curve": curve,
                    "init_mm": model.tolist(),
                    "registered_mm": finals,
                    "register_s": reg_s,
                },
                indent=1,
            )
        )


def doc_block(data: dict) -> str:
    """The documentation's lines for a `--json` run: the command, the curve and the registration."""
    a = data["args"]
    init = np.array(data["init_mm"])
    reg = np.array(data["registered_mm"])
    lines = [
        f"`python -m benchmarks.train_cpu {data.get('command', '')}` on {data.get('cpu', 'this CPU')} "
        f"({a['threads']} threads): {a['model_name']}, 64 px DRRs, batch {a['batch_size']}, renderer "
        f"{a['renderer']}, trained for {data['train_s'] / 60:.1f} min; {len(init)} held-out X-rays "
        f"of the {a.get('anatomy', 'chest')} (DiffDRR-made, 256 px at "
        f"{PIXEL_MM[a.get('anatomy', 'chest')]:g} mm, poses in the sampling ranges).",
        "",
        "| minutes | iterations | median mTRE of the model's pose | mean | within 20 mm |",
        "|---|---|---|---|---|",
    ]
    for c in data["curve"]:
        lines.append(
            f"| {c['minutes']:.1f} | {c['itr']} | {c['median_mm']:.1f} mm | {c['mean_mm']:.1f} mm | "
            f"{100 * c['within_20mm']:.0f} % |"
        )
    lines += [
        "",
        f"`xvr register model` from the last checkpoint: {int((reg < 1).sum())}/{len(reg)} under 1 mm "
        f"(median {np.median(reg):.2f} mm, max {reg.max():.2f} mm) from starts of median "
        f"{np.median(init):.1f} mm ({100 * np.mean(init < 20):.0f} % within 20 mm), "
        f"{data['register_s']:.0f} s for the {len(reg)} X-rays.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
