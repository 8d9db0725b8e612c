"""Fluoroscopy tracking: ``xvr track`` against registering every frame from scratch.

``python -m benchmarks.tracking [--frames 60] [--motions sweep,breathing] [--json out.json]``
renders two synthetic sequences of the chest CT (:mod:`napari_xvr.synthetic_motion`: 128 px
frames of 3.2 mm, DiffDRR's Siddon renderer on the full-resolution CT, quantum noise; cached):
a C-arm sweep of 30 deg over the frames, and breathing (4 mm cranio-caudal and 2 mm front-back,
sinusoidal with a 15-frame period, 1 deg of tilt). Each is tracked (:func:`track`, the CT
downsampled 2x2x1, ``xvr track`` defaults) with and without the velocity prediction, once
with ``--hessian_every 1`` (every frame checks its convergence with a new Hessian: the tracker
before it trusted recent ones), and, as the baseline in the same run, every frame is
registered from scratch with ``xvr register``'s defaults (:func:`register_xray`) from its
own header pose (frame 0's header error, 3 deg and the source distance, at every frame).
The velocity run's poses smoothed at the end (``xvr track``'s ``poses_smoothed.csv``,
:mod:`napari_xvr.register.workflows.smooth`) are a row of their own.
Prints per sequence and method the per-frame mTRE (max, median), the frames under 1 mm, the
verdicts, seconds per frame and frames per second of the frames after the first, and the
ratios; last, the floor: every frame registered at its own resolution from its true pose (the
similarity's optimum of that frame, whatever the start).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from napari_xvr.evaluate import anatomy_tre, mtre
from napari_xvr.geometry import pose_from_dict, pose_from_matrix, pose_from_zxy, pose_to_zxy
from napari_xvr.io.volume import read_volume
from napari_xvr.register.checks.trust import assess
from napari_xvr.register.checks.uncertainty import volume_points
from napari_xvr.register.engine import Preprocessing, register, run_to_end
from napari_xvr.register.initializers import DicomInitializer
from napari_xvr.register.options import RegistrationOptions
from napari_xvr.register.volume_spec import VolumeSpec
from napari_xvr.register.workflows.one_xray import register_xray
from napari_xvr.register.workflows.sequence import read_frames
from napari_xvr.register.workflows.smooth import smooth_results
from napari_xvr.register.workflows.track import (
    HESSIAN_EVERY,
    TRACK_ITRS,
    TRACK_SCALES,
    FrameDone,
    TrackDone,
    TrackOptions,
    track,
)
from napari_xvr.synthetic import example_volume
from napari_xvr.synthetic_motion import breathing, make_sequence, sweep

from .measure import environment
from .optimizers import CACHE

MOTIONS = {"sweep": lambda n: sweep(n, 30.0), "breathing": breathing}
SMOOTHED = "track (velocity), smoothed"


def sequence(name: str, frames: int, cache: Path) -> tuple[Path, dict]:
    """The sequence's DICOM and truth (rendered once into the cache)."""
    folder = cache / "tracking"
    truth = folder / f"{name}_{frames}.json"
    if not truth.exists():
        print(f"rendering the {name} sequence ({frames} frames, Siddon, full CT) ...", flush=True)
        make_sequence(folder, MOTIONS[name](frames), name=f"{name}_{frames}")
    return folder / f"{name}_{frames}.dcm", json.loads(truth.read_text())


def errors(poses: dict, truth: dict, metric=mtre) -> list[float]:
    """Per frame, in frame order: xvr's mTRE (or `metric`) of the pose against the truth."""
    return [
        metric(pose_from_dict(truth["frames"][i]), pose_from_matrix(pose), truth["fiducials_mm"])
        for i, pose in sorted(poses.items())
    ]


def run_track(frames, drr, spec, options: TrackOptions) -> tuple[list[dict], list[dict] | None]:
    """One row per frame (pose, seconds, iterations, verdict), and the same for the smoothed
    poses (None without ``options.smooth``; its seconds: the frame's plus its share of the
    smoothing, timed again on the same results)."""
    init = DicomInitializer()(frames.frame(0))
    rows, done = [], None
    for event in track(frames, drr, init, spec, RegistrationOptions(), options):
        if isinstance(event, FrameDone):
            rows.append(_row(event.index, event.result, event.seconds))
        elif isinstance(event, TrackDone):
            done = event
    if done is None or done.smoothed is None:
        return rows, None
    t0 = time.perf_counter()
    smooth_results(done.results, volume_points(drr))
    share = (time.perf_counter() - t0) / len(rows)
    smoothed = [
        {**row, "pose": pose, "seconds": row["seconds"] + share}
        for row, pose in zip(rows, done.smoothed.poses, strict=True)
    ]
    return rows, smoothed


def run_scratch(frames, drr, spec, truth: dict) -> list[dict]:
    """Every frame registered alone with `xvr register dicom`'s defaults from its header pose."""
    header = DicomInitializer()(frames.frame(0))
    rot0, xyz0 = pose_to_zxy(header)
    rows = []
    for index in range(len(frames)):
        start = _header_pose(truth["frames"][index], truth["frames"][0], rot0, xyz0)
        t0 = time.perf_counter()
        result = run_to_end(
            register_xray(
                frames.frame(index),
                drr,
                start,
                spec,
                {"type": "header"},
                RegistrationOptions(),
                Preprocessing(reducefn=index),
            )
        )
        rows.append(_row(index, result, time.perf_counter() - t0))
    return rows


def run_optimum(frames, drr, truth: dict) -> list[dict]:
    """The reference floor: every frame registered at its own resolution from its true pose
    (where the similarity's optimum for that frame is, whatever the start)."""
    rows = []
    for index in range(len(frames)):
        start = pose_from_dict(truth["frames"][index])
        t0 = time.perf_counter()
        result = run_to_end(
            register(
                frames.frame(index),
                drr,
                start,
                RegistrationOptions(scales="1", n_itrs="20"),
                Preprocessing(reducefn=index),
            )
        )
        result.verdict = assess(result).to_json()
        rows.append(_row(index, result, time.perf_counter() - t0))
    return rows


def _header_pose(true: dict, true0: dict, rot0, xyz0):
    """Frame `true`'s header pose: frame 0's header error (angles, source distance) carried over."""
    rot, _ = pose_to_zxy(pose_from_dict(true))
    first, _ = pose_to_zxy(pose_from_dict(true0))
    return pose_from_zxy(rot0 + (rot - first), xyz0)


def _row(index: int, result, seconds: float) -> dict:
    return {
        "frame": index,
        "pose": np.asarray(result.final_pose),
        "seconds": seconds,
        "iterations": result.iterations,
        "verdict": result.verdict["status"],
    }


def summarise(rows: list[dict], truth: dict) -> dict:
    poses = {r["frame"]: r["pose"] for r in rows}
    err = np.array(errors(poses, truth))
    anatomy = np.array(errors(poses, truth, anatomy_tre))
    later = [r["seconds"] for r in rows[1:]]
    verdicts = [r["verdict"] for r in rows]
    return {
        "mtre_max": float(err.max()),
        "mtre_median": float(np.median(err)),
        "under_1mm": int((err < 1).sum()),
        "frames": len(rows),
        "first_s": rows[0]["seconds"],
        "s_per_frame": float(np.mean(later)),
        "s_per_frame_median": float(np.median(later)),
        "seconds": [r["seconds"] for r in rows],
        "frames_per_s": len(later) / float(np.sum(later)),
        "iterations": float(np.mean([r["iterations"] for r in rows[1:]])),
        "ok": verdicts.count("ok"),
        "suspect": verdicts.count("suspect"),
        "failed": verdicts.count("failed"),
        "anatomy_tre_max": float(anatomy.max()),
        "anatomy_tre_median": float(np.median(anatomy)),
        "mtre": err.round(4).tolist(),
        "anatomy_tre": anatomy.round(4).tolist(),
        "poses": [np.asarray(poses[i]).round(6).tolist() for i in sorted(poses)],
    }


def bench_sequence(name: str, frames, drr, spec, truth: dict, baseline: bool, budget: dict) -> dict:
    """method -> summary for one sequence; the tracker with and without prediction and with
    every frame's Hessian checked, then the baseline, all in this process. `budget`:
    TrackOptions' scales, n_itrs and hessian_every."""
    results = {}
    checked = {**budget, "hessian_every": 1}
    for method, predict, frame_budget in (
        ("track (velocity)", "velocity", budget),
        ("track (none)", "none", budget),
        ("track (velocity, hessian_every 1)", "velocity", checked),
    ):
        options = TrackOptions(predict=predict, smooth=method == "track (velocity)", **frame_budget)
        rows, smoothed = run_track(frames, drr, spec, options)
        results[method] = summarise(rows, truth)
        print_line(name, method, results[method])
        if smoothed is not None:
            results[SMOOTHED] = summarise(smoothed, truth)
            print_line(name, SMOOTHED, results[SMOOTHED])
    ratio = (
        results["track (velocity)"]["frames_per_s"]
        / results["track (velocity, hessian_every 1)"]["frames_per_s"]
    )
    print(f"  {name}: trusting recent Hessians is {ratio:.2f}x every frame checking its own")
    results["track (velocity)"]["speedup_vs_hessian_every_1"] = ratio
    if baseline:
        method = "register each frame"
        results[method] = summarise(run_scratch(frames, drr, spec, truth), truth)
        print_line(name, method, results[method])
        for tracked in ("track (velocity)", "track (none)", "track (velocity, hessian_every 1)"):
            ratio = results[tracked]["frames_per_s"] / results[method]["frames_per_s"]
            print(f"  {name}: {tracked} is {ratio:.1f}x the baseline's frames/s")
            results[tracked]["speedup_vs_baseline"] = ratio
    method = "optimum (from the truth)"
    results[method] = summarise(run_optimum(frames, drr, truth), truth)
    print_line(name, method, results[method])
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tracking",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--motions", default="sweep,breathing")
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip registering every frame from scratch",
    )
    parser.add_argument("--track_scales", default=TRACK_SCALES, help="per-frame scales")
    parser.add_argument("--track_itrs", default=TRACK_ITRS, help="per-frame iteration caps")
    parser.add_argument(
        "--hessian_every",
        type=int,
        default=HESSIAN_EVERY,
        help="a new LM Hessian at least every this many frames",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ct, _ = example_volume(args.cache, (2, 2, 1))
    spec = VolumeSpec(ct)
    subject = read_volume(ct)
    report = {
        "environment": environment(torch.device("cpu")),
        "sequences": {},
        "track_scales": args.track_scales,
        "track_itrs": args.track_itrs,
        "hessian_every": args.hessian_every,
    }
    for name in args.motions.split(","):
        path, truth = sequence(name, args.frames, args.cache)
        frames = read_frames([path])
        drr = spec.make_renderer(subject, frames.intrinsics)
        report["sequences"][name] = bench_sequence(
            name,
            frames,
            drr,
            spec,
            truth,
            args.baseline,
            {"scales": args.track_scales, "n_itrs": args.track_itrs, "hessian_every": args.hessian_every},
        )
    report["environment"]["loadavg_end"] = list(os.getloadavg())
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def print_line(name: str, method: str, s: dict) -> None:
    print(
        f"{name:9s} {method:34s} mTRE max {s['mtre_max']:.2f} median {s['mtre_median']:.2f} mm | "
        f"under 1 mm {s['under_1mm']}/{s['frames']} | anatomy TRE max "
        f"{s['anatomy_tre_max']:.2f} mm | {1000 * s['s_per_frame']:.0f} ms/frame (median "
        f"{1000 * s['s_per_frame_median']:.0f}), "
        f"{s['frames_per_s']:.2f} frames/s (frame 0: {s['first_s']:.1f} s) | "
        f"{s['iterations']:.1f} itrs | verdicts {s['ok']} ok {s['suspect']} suspect "
        f"{s['failed']} failed",
        flush=True,
    )


def print_table(report: dict) -> None:
    env = report["environment"]
    print(
        f"\n{env['device_name']}, {env['torch_threads']} torch threads, torch {env['torch']}, "
        f"load average {env['loadavg'][0]:.2f} at start, {env['loadavg_end'][0]:.2f} at end\n"
    )
    print(
        "| sequence | method | mTRE max mm | mTRE median mm | under 1 mm | anatomy TRE max mm | "
        "ms / frame (median) | frames / s | iterations | verdicts ok/suspect/failed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, results in report["sequences"].items():
        for method, s in results.items():
            print(
                f"| {name} | {method} | {s['mtre_max']:.2f} | {s['mtre_median']:.2f} | "
                f"{s['under_1mm']}/{s['frames']} | {s['anatomy_tre_max']:.2f} | "
                f"{1000 * s['s_per_frame']:.0f} ({1000 * s['s_per_frame_median']:.0f}) | "
                f"{s['frames_per_s']:.2f} | {s['iterations']:.1f} | "
                f"{s['ok']}/{s['suspect']}/{s['failed']} |"
            )


if __name__ == "__main__":
    raise SystemExit(main())
