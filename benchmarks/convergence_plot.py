"""mTRE against wall time for the reference, ours with Adam and ours (LM) on synthetic cases.

``python -m benchmarks.convergence_plot --out docs/images/registration_convergence.png`` registers
the benchmark's first cases with the three methods of ``benchmarks.registration.methods``, takes
the mTRE of every iterate in the trajectory, and plots it against the cumulative time (needs
matplotlib, which the ``napari`` extra installs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from napari_xvr.geometry import pose_from_dict, pose_from_zxy
from napari_xvr.io.xray import read_xray
from napari_xvr.register.engine import register, run_to_end
from napari_xvr.register.initializers import DicomInitializer
from napari_xvr.render import make_drr

from .optimizers import CACHE, case_set
from .registration import methods, mtre

COLOURS = {"xvr_reference": "tab:grey", "ours_adam": "tab:blue", "ours": "tab:red"}


def curves(subject, folder: Path, truth: dict, name: str) -> dict:
    """method -> (cumulative seconds, mTRE mm) along the optimiser's trajectory."""
    xray = read_xray(folder / f"{name}.dcm")
    true = pose_from_dict(truth["cases"][name]["true_pose"])
    out = {}
    for method, (renderer, options) in methods(quick=False).items():
        drr = make_drr(subject, xray.intrinsics, renderer=renderer)
        result = run_to_end(register(xray, drr, DicomInitializer()(xray), options))
        seconds = np.cumsum([row["time"] for row in result.trajectory])
        errors = [
            mtre(
                pose_from_zxy([row["r1"], row["r2"], row["r3"]], [row["tx"], row["ty"], row["tz"]])
                .matrix[0]
                .numpy(),
                true,
                truth["fiducials_mm"],
            )
            for row in result.trajectory
        ]
        out[method] = (seconds, np.array(errors), mtre(result.final_pose, true, truth["fiducials_mm"]))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.convergence_plot", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("registration_convergence.png"))
    parser.add_argument("--cases", type=int, default=3, help="cases plotted (side by side)")
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder, truth, subject = case_set(args.cases, args.cache)
    names = list(truth["cases"])[: args.cases]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for method, (seconds, errors, final) in curves(subject, folder, truth, name).items():
            ax.plot(
                seconds,
                errors,
                color=COLOURS.get(method),
                lw=1.5,
                label=f"{method}: {seconds[-1]:.1f} s, {final:.2f} mm",
            )
        ax.axhline(1.0, color="k", lw=0.6, ls=":")
        ax.set(xscale="log", yscale="log", title=name, xlabel="seconds (2-core CPU)")
        ax.legend(fontsize=7, loc="lower left")
    axes[0][0].set_ylabel("mTRE of the iterate (mm)")
    fig.suptitle("Registration from the DICOM header: mTRE along the optimisation", fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
