"""Registration benchmark: seconds per X-ray and mTRE, ours against xvr's algorithm on DiffDRR."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from diffdrr.pose import RigidTransform

from napari_xvr import evaluate
from napari_xvr.geometry import Intrinsics, pose_from_dict, pose_from_matrix
from napari_xvr.io.xray import read_xray
from napari_xvr.register.engine import register, run_to_end
from napari_xvr.register.initializers import DicomInitializer
from napari_xvr.register.options import RegistrationOptions
from napari_xvr.render import make_drr
from napari_xvr.synthetic import make_cases

CASE_INTRINSICS = Intrinsics(sdd=1020.0, height=256, width=256, delx=1.6, dely=1.6)


def mtre(pred: np.ndarray, true: RigidTransform, fiducials) -> float:
    """xvr's mTRE (mm) of a 4x4 `pred` against `true` (:func:`napari_xvr.evaluate.mtre`)."""
    return evaluate.mtre(true, pose_from_matrix(pred), fiducials)


def make_benchmark_cases(folder: Path, n: int, ct, mask, intrinsics: Intrinsics = CASE_INTRINSICS) -> dict:
    truth = folder / "truth.json"
    if not truth.exists():
        make_cases(folder, n=n, seed=0, intrinsics=intrinsics, volume=ct, mask=mask)
    return json.loads(truth.read_text())


def bench_registration(subject, folder: Path, truth: dict, methods: dict, device, log=print) -> list[dict]:
    """`methods`: name -> (renderer, RegistrationOptions); a renderer ``fast:nudged`` is the
    fast renderer with LM's Hessians from six nudged renders (as before they came from its
    Jacobian). One row per (case, method)."""
    rows = []
    for name, case in truth["cases"].items():
        xray = read_xray(folder / f"{name}.dcm")
        init = DicomInitializer()(xray)
        true = pose_from_dict(case["true_pose"])
        for method, (renderer, options) in methods.items():
            kind, _, variant = renderer.partition(":")
            drr = make_drr(subject, xray.intrinsics, renderer=kind, device=device)
            if variant == "nudged":
                drr.exact_jacobian = False
            t0 = time.perf_counter()
            result = run_to_end(register(xray, drr, init, options))
            seconds = time.perf_counter() - t0
            rows.append(
                {
                    "case": name,
                    "method": method,
                    "renderer": renderer,
                    "optimizer": options.optimizer,
                    "scales": options.scales,
                    "n_itrs": options.n_itrs,
                    "seconds": seconds,
                    "iterations": result.iterations,
                    "mtre_init_mm": mtre(result.init_pose, true, truth["fiducials_mm"]),
                    "mtre_mm": mtre(result.final_pose, true, truth["fiducials_mm"]),
                }
            )
            log(
                f"  registration {name} {method}: {seconds:.1f} s, {result.iterations} itrs, "
                f"mTRE {rows[-1]['mtre_init_mm']:.1f} -> {rows[-1]['mtre_mm']:.2f} mm"
            )
    return rows


def methods(quick: bool) -> dict:
    """name -> (renderer, options): the reference and ours, plus ours with Adam (the ablation).

    The reference is xvr's `register` with its defaults: one scale (8), up to 500 Adam
    iterations with ReduceLROnPlateau, gradient-NCC sigma 5, no equalization, DiffDRR's
    trilinear renderer.  `ours` is napari-xvr's defaults: Levenberg-Marquardt at scales 8,4,2
    on the fast renderer with 6 mm slabs; `ours_adam` swaps in Adam (xvr's optimiser) there;
    `ours_nudged_hessians` takes LM's Hessians from six nudged renders instead of the render's
    Jacobian (the engine before the Jacobian).
    """
    reference = dict(optimizer="adam", sigma=5.0, fine_sigma=5.0, equalize=False, slab_mm=0.0)
    if quick:  # plumbing only: one small X-ray, a few iterations
        return {
            "xvr_reference": ("trilinear", RegistrationOptions(scales="4", n_itrs="6", **reference)),
            "ours": ("fast", RegistrationOptions(scales="4", n_itrs="6")),
        }
    return {
        "xvr_reference": ("trilinear", RegistrationOptions(scales="8", n_itrs="500", **reference)),
        "ours_adam": ("fast", RegistrationOptions(optimizer="adam")),
        "ours_nudged_hessians": ("fast:nudged", RegistrationOptions()),
        "ours": ("fast", RegistrationOptions()),
    }
