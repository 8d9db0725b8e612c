"""Registration on realistic X-rays: several anatomies, every realism factor, header errors.

``python -m benchmarks.realistic [--anatomies chest,abdomen,head,skull] [--cases 8]
[--factors] [--json out.json] [register options...]`` makes (once, cached) realistic X-ray DICOMs
of each anatomy with :mod:`napari_xvr.simulate` (its own projector, a polychromatic spectrum
through HU-derived materials, scatter, noise, blur, gain, vendor processing, collimators,
annotations, a table and devices; views AP, PA, lateral, oblique and a partial field; the header's
angles 2-4 deg off, the patient up to 20 mm off the isocentre per axis), registers each from its
header with ``xvr register dicom``'s defaults (or the options given) and prints, per anatomy and
view, how many end under 1 mm, the median and max mTRE (xvr's), the verdicts, and whether every
case over 2 mm reads ``failed`` and none under 1 mm does. ``--factors`` repeats a set with each
realism factor alone (and none), to show what each costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from napari_xvr.evaluate import evaluate_poses
from napari_xvr.geometry import Intrinsics, pose_from_dict
from napari_xvr.io.result import result_pose
from napari_xvr.io.xray import read_xray
from napari_xvr.register.checks.trust import verdict_text
from napari_xvr.register.engine import Preprocessing
from napari_xvr.register.initializers import DicomInitializer
from napari_xvr.register.options import RegistrationOptions
from napari_xvr.register.volume_spec import VolumeSpec
from napari_xvr.register.workflows.one_xray import register_xray
from napari_xvr.register.workflows.pipeline import describe
from napari_xvr.simulate.anatomy import ANATOMIES
from napari_xvr.simulate.cases import make_realistic_cases
from napari_xvr.simulate.formation import FACTORS, Realism

from .measure import environment

CACHE = Path(tempfile.gettempdir()) / "napari_xvr_realistic"


@dataclass
class Row:
    """One registration of one case."""

    anatomy: str
    case: str
    view: str
    realism: str
    mtre_init: float
    mtre: float
    verdict: str
    predicted_mm: float | None
    seconds: float
    reasons: list = field(default_factory=list)
    checks: dict = field(default_factory=dict)
    mpe: float = float("nan")  # mm on the detector: the in-plane part of the error
    rotation_deg: float = float("nan")


def case_folder(cache: Path, anatomy: str, n: int, seed: int, realism: Realism) -> Path:
    return cache / f"{anatomy}_n{n}_s{seed}_{realism.name}"


def ensure_cases(cache: Path, anatomy: str, n: int, seed: int, realism: Realism) -> Path:
    """truth.json of the cached set, made first when missing."""
    folder = case_folder(cache, anatomy, n, seed, realism)
    truth = folder / "truth.json"
    if not truth.exists():
        print(f"simulating {n} {anatomy} X-rays ({realism.name}) into {folder} ...", flush=True)
        make_realistic_cases(
            folder,
            anatomy,
            n,
            seed,
            cache=cache / "volumes",
            realism=realism,
            progress=lambda i, t, name: print(f"  {i}/{t} {name}", flush=True),
        )
    return truth


def register_set(
    truth_path: Path,
    options: RegistrationOptions,
    preprocessing: Preprocessing,
    device,
    names=None,
    verbose: bool = True,
    density: str | None = None,
    from_truth: bool = False,
    **register_kw,
) -> list[Row]:
    """Register every case of a truth.json from its header (`from_truth`: from its true pose,
    which measures where the optimum lies rather than whether it is found); one Row per case."""
    truth = json.loads(Path(truth_path).read_text())
    folder = Path(truth_path).parent
    spec = VolumeSpec(
        Path(truth["volume"]), None if truth["mask"] is None else Path(truth["mask"]), device=str(device)
    )
    if density:
        spec.density = density
    subject = spec.read()
    initializer = DicomInitializer()
    fiducials = np.asarray(truth["fiducials_mm"])
    drr, rows = None, []
    for name, case in truth["cases"].items():
        if names and name not in names:
            continue
        xray = read_xray(folder / f"{name}.dcm")
        if drr is None:
            drr = spec.make_renderer(subject, xray.intrinsics)
        init = pose_from_dict(case["true_pose"]) if from_truth else initializer(xray)
        result = None
        for event in register_xray(
            xray, drr, init, spec, describe(initializer), options, preprocessing, **register_kw
        ):
            result = getattr(event, "result", result)
        intr = Intrinsics(**case["intrinsics"])
        true = pose_from_dict(case["true_pose"])
        before = evaluate_poses(true, pose_from_dict({"matrix": result.init_pose}), fiducials, intr)
        after = evaluate_poses(true, result_pose(result.to_json()), fiducials, intr)
        u = result.checks.get("uncertainty") or {}
        row = Row(
            truth.get("anatomy", "?"),
            name,
            case.get("view", "?"),
            case.get("realism", "?"),
            before.mtre,
            after.mtre,
            result.verdict["status"],
            u.get("predicted_mtre_mm"),
            result.runtime_s,
            result.verdict["reasons"],
            _light(result.checks),
            after.mpe,
            after.rotation_error_deg,
        )
        rows.append(row)
        if verbose:
            print(
                f"  {name:28s} mTRE {before.mtre:7.2f} -> {after.mtre:8.3f} mm (mPE "
                f"{after.mpe:5.2f} mm, {after.rotation_error_deg:4.2f} deg)  "
                f"{result.runtime_s:5.1f} s  {verdict_text(result)[:110]}",
                flush=True,
            )
    return rows


def _light(checks: dict) -> dict:
    """The checks without their big arrays (the covariance)."""
    out = {}
    for key, value in checks.items():
        out[key] = {k: v for k, v in value.items() if k != "covariance"} if isinstance(value, dict) else value
    return out


def summarize(rows: list[Row], label: str) -> dict:
    """Counts and the verdict's calibration of a group of rows."""
    errors = np.array([r.mtre for r in rows])
    statuses = [r.verdict for r in rows]
    over2 = [r for r in rows if r.mtre > 2]
    under1 = [r for r in rows if r.mtre < 1]
    return {
        "label": label,
        "n": len(rows),
        "under_1mm": int((errors < 1).sum()),
        "median_mm": float(np.median(errors)) if len(rows) else math.nan,
        "max_mm": float(errors.max()) if len(rows) else math.nan,
        "ok": statuses.count("ok"),
        "suspect": statuses.count("suspect"),
        "failed": statuses.count("failed"),
        "over_2mm": len(over2),
        "over_2mm_failed": sum(r.verdict == "failed" for r in over2),
        "under_1mm_failed": sum(r.verdict == "failed" for r in under1),
        "wrong_but_ok": sum(r.verdict == "ok" and r.mtre > 1 for r in rows),
        "seconds_mean": float(np.mean([r.seconds for r in rows])) if rows else math.nan,
    }


def table_lines(summaries: list[dict]) -> list[str]:
    """A Markdown table of :func:`summarize` rows."""
    head = (
        "set",
        "n",
        "<1 mm",
        "median mm",
        "max mm",
        "ok/susp/fail",
        ">2 mm failed",
        "<1 mm failed",
        "wrong ok",
        "s/X-ray",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        lines.append(
            f"| {s['label']} | {s['n']} | {s['under_1mm']} | {s['median_mm']:.2f} | "
            f"{s['max_mm']:.2f} | {s['ok']}/{s['suspect']}/{s['failed']} | "
            f"{s['over_2mm_failed']}/{s['over_2mm']} | {s['under_1mm_failed']} | "
            f"{s['wrong_but_ok']} | {s['seconds_mean']:.1f} |"
        )
    return lines


def print_table(summaries: list[dict]) -> None:
    print("\n".join(table_lines(summaries)))


def plot_verdicts(rows: list[Row], truths: dict, path: Path) -> Path:
    """The verdict's calibration: each result's true mTRE against how far its finest scale moved
    (in the previous scale's pixels) and its fit, marked by verdict, with the thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, StrMethodFormatter

    from napari_xvr.register.checks.trust import (
        DRIFT_PX,
        EXPLAINED,
        LONG_WALK,
        UNSETTLED_PX,
        finest_scale_motion,
    )

    colours = {"ok": "#2a9d4b", "suspect": "#e0a000", "failed": "#d62728"}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for row in rows:
        intrinsics = truths[row.case]["intrinsics"]
        moved, pixel = finest_scale_motion(row.checks, intrinsics["delx"], intrinsics["dely"])
        fit = (row.checks.get("fit") or {}).get("ratio", math.nan)
        if not math.isfinite(pixel):
            continue
        moved /= pixel
        convergence = row.checks.get("convergence") or {}
        walked = not convergence.get("converged", True) or convergence.get("iterations", 0) > LONG_WALK
        marker = "x" if walked else "o"
        for ax, y in zip(axes, (moved, fit), strict=True):
            ax.scatter(row.mtre, y, c=colours[row.verdict], marker=marker, s=36)
    for ax in axes:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500]))
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("true mTRE (mm)")
        for x in (1.0, 2.0):
            ax.axvline(x, color="0.6", lw=0.8, ls=":")
    axes[0].axhline(DRIFT_PX, color="#d62728", lw=0.8)
    axes[0].axhline(UNSETTLED_PX, color="#d62728", lw=0.8, ls="--")
    axes[0].set_ylabel("finest scale's move (previous scale's pixels)")
    axes[0].set_title(
        f"failed: above the solid line, or the dashed one for x (> {LONG_WALK} iterations or out of them)",
        fontsize=9,
    )
    axes[1].axhline(EXPLAINED, color="#2a9d4b", lw=0.8)
    axes[1].set_ylabel("fit: similarity / the X-ray's own ceiling")
    axes[1].set_title("fit: at or above the line a move is a correction", fontsize=9)
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=k) for k, c in colours.items()]
    axes[1].legend(handles=handles, loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def bench_realistic(cache: Path, anatomies, n: int, seed: int, device, verbose: bool = False) -> dict:
    """Every anatomy's cases (made once, cached) registered with the defaults: the rows and a
    summary per anatomy and for all (``python -m benchmarks``' realistic section)."""
    rows: list[Row] = []
    summaries = []
    for anatomy in anatomies:
        truth = ensure_cases(cache, anatomy, n, seed, Realism.every())
        found = register_set(truth, RegistrationOptions(), Preprocessing(), device, verbose=verbose)
        rows += found
        summaries.append(summarize(found, anatomy))
    summaries.append(summarize(rows, "all anatomies"))
    return {"rows": [r.__dict__ for r in rows], "summaries": summaries}


def parse(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.realistic",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--anatomies", default=",".join(ANATOMIES))
    parser.add_argument("--cases", type=int, default=8, help="cases per anatomy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--factors", action="store_true", help="also each realism factor alone, and none")
    parser.add_argument(
        "--factor_anatomies", default="chest,head", help="the anatomies of --factors (comma-separated)"
    )
    parser.add_argument(
        "--factor_list",
        default=None,
        help="the realism factors of --factors, each alone (comma-separated; default: every one)",
    )
    parser.add_argument(
        "--without",
        action="store_true",
        help="with --factors: every factor but each one in turn (what removing it gains), "
        "instead of each alone",
    )
    parser.add_argument(
        "--from_truth",
        action="store_true",
        help="start at the true pose, the finest scale alone (unless --option scales=... says "
        "otherwise): where the optimum lies, apart from finding it; mPE separates the in-plane "
        "error from the depth along the central ray",
    )
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--density", default=None, help="the volume's density (register's --density)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default=None, help="comma-separated case names")
    parser.add_argument(
        "--doc",
        type=Path,
        default=None,
        help="write the tables into this document's block (docs/accuracy.md): realistic, "
        "with _factors, _from_truth and _seed<N> added by those options",
    )
    parser.add_argument(
        "--plot", type=Path, default=None, help="a PNG of the verdict's calibration (every factor on)"
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        help="a registration option as name=value (e.g. xray_mask=auto)",
    )
    return parser.parse_args(argv)


def _options(pairs: list[str]) -> RegistrationOptions:
    kwargs = {}
    defaults = RegistrationOptions()
    for pair in pairs:
        key, value = pair.split("=", 1)
        current = getattr(defaults, key)
        kwargs[key] = (
            type(current)(value)
            if current is not None and not isinstance(current, bool)
            else (value.lower() in ("1", "true", "on") if isinstance(current, bool) else value)
        )
    return RegistrationOptions(**kwargs)


def main(argv=None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    options = _options(args.option)
    if args.from_truth and not any(o.startswith("scales=") for o in args.option):
        options = dataclasses.replace(options, scales="1", n_itrs="30")
    names = set(args.only.split(",")) if args.only else None
    out = {
        "environment": environment(torch.device(args.device)),
        "options": options.to_dict(),
        "rows": [],
        "summaries": [],
    }
    realisms = [Realism.every()]
    if args.factors:
        chosen = args.factor_list.split(",") if args.factor_list else FACTORS
        if args.without:
            realisms += [Realism(frozenset(FACTORS) - {f}) for f in chosen]
        else:
            realisms += [Realism.none()] + [Realism.only(f) for f in chosen]
    t0 = time.perf_counter()
    for realism in realisms:
        anatomies = (args.anatomies if realism.name == "all" else args.factor_anatomies).split(",")
        for anatomy in anatomies:
            truth = ensure_cases(args.cache, anatomy, args.cases, args.seed, realism)
            print(f"{anatomy} ({realism.name}):", flush=True)
            rows = register_set(
                truth,
                options,
                Preprocessing(),
                args.device,
                names,
                density=args.density,
                from_truth=args.from_truth,
            )
            out["rows"] += [r.__dict__ for r in rows]
            out["summaries"].append(summarize(rows, f"{anatomy}, {realism.name}"))
            print(
                f"  median mTRE {np.median([r.mtre for r in rows]):.2f} mm, mPE "
                f"{np.median([r.mpe for r in rows]):.2f} mm, rotation "
                f"{np.median([r.rotation_deg for r in rows]):.2f} deg",
                flush=True,
            )
    all_rows = [Row(**r) for r in out["rows"] if r["realism"] == "all"]
    by_view = {}
    for r in all_rows:
        by_view.setdefault(f"{r.anatomy} {r.view}", []).append(r)
    out["by_view"] = [summarize(v, k) for k, v in sorted(by_view.items())]
    out["total"] = summarize(all_rows, "all anatomies, every factor")
    print_table(out["summaries"] + [out["total"]])
    print()
    print_table(out["by_view"])
    print(f"{time.perf_counter() - t0:.0f} s in all")
    if args.doc:
        from .report import replace_block

        env = out["environment"]
        block = "realistic" + "_factors" * args.factors + "_from_truth" * args.from_truth
        block += f"_seed{args.seed}" if args.seed else ""
        replace_block(
            args.doc,
            block,
            "\n".join(
                [
                    f"`python -m benchmarks.realistic {' '.join(sys.argv[1:])}` on "
                    f"{env['device_name']} ({env['torch_threads']} torch threads), "
                    f"{time.perf_counter() - t0:.0f} s:",
                    "",
                    *table_lines(out["summaries"] + [out["total"]]),
                    "",
                    "By view:",
                    "",
                    *table_lines(out["by_view"]),
                ]
            ),
        )
    if args.plot:
        truths = {}
        for anatomy in {r.anatomy for r in all_rows}:
            path = case_folder(args.cache, anatomy, args.cases, args.seed, Realism.every())
            truths.update(json.loads((path / "truth.json").read_text())["cases"])
        print(f"wrote {plot_verdicts(all_rows, truths, args.plot)}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
