"""Shared by the optimiser studies: the cached case set, both optimisers on it, one summary line."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from diffdrr.pose import RigidTransform

from napari_xvr.geometry import pose_from_dict
from napari_xvr.io.volume import read_volume
from napari_xvr.io.xray import XRay
from napari_xvr.register.engine import register, run_to_end
from napari_xvr.register.options import RegistrationOptions
from napari_xvr.render import make_drr
from napari_xvr.synthetic import example_volume

from .registration import make_benchmark_cases, mtre

CACHE = Path(tempfile.gettempdir()) / "napari_xvr_bench"


def case_set(n: int, cache: Path = CACHE):
    """(folder, truth, subject): `n` synthetic X-rays of the 2x2x1 CT (made once) and the CT."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    ct, mask = example_volume(cache, (2, 2, 1))
    folder = cache / f"cases_{n}"
    return folder, make_benchmark_cases(folder, n, ct, mask), read_volume(ct, mask)


def run_both(
    folder: Path,
    truth: dict,
    subject,
    prepare: Callable[[str, RigidTransform], tuple[XRay, RigidTransform]],
    options: Callable[[str], RegistrationOptions] = lambda opt: RegistrationOptions(optimizer=opt),
    methods: tuple[str, ...] = ("lm", "adam"),
) -> dict:
    """method -> rows (initial mTRE, final mTRE, similarity, seconds), one per case.

    `prepare(name, true_pose)` gives the X-ray to register and the starting pose;
    `options(method)` the registration options of each method.
    """
    rows = {method: [] for method in methods}
    for name, case in truth["cases"].items():
        true = pose_from_dict(case["true_pose"])
        xray, start = prepare(name, true)
        drr = make_drr(subject, xray.intrinsics, renderer="fast")
        before = mtre(start.matrix[0].numpy(), true, truth["fiducials_mm"])
        for optimizer, out in rows.items():
            result = run_to_end(register(xray, drr, start, options(optimizer)))
            out.append(
                (
                    before,
                    mtre(result.final_pose, true, truth["fiducials_mm"]),
                    result.similarity,
                    result.runtime_s,
                )
            )
    return rows


def print_rows(rows: dict) -> None:
    for optimizer, out in rows.items():
        v = np.array(out)
        before, after, sim, seconds = v.T
        print(
            f"{optimizer:12s} initial mTRE mean {before.mean():5.1f} mm | similarity {sim.mean():.3f} | "
            f"final mTRE median {np.median(after):.2f} max {after.max():.2f} mm | "
            f"under 1 mm {int((after < 1).sum())}/{len(v)} | {seconds.mean():.2f} s per X-ray"
        )
