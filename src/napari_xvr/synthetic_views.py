"""Synthetic multi-view cases of the example chest CT: views of one patient position.

Each case is a C-arm geometry (every view's positioner angles and source distance, written in
its DICOM header exactly) and one unknown patient displacement ``D`` shared by the views: view
k's true pose is ``D @ carm_pose(angles_k)``. The images are rendered by DiffDRR's own ``DRR``
(Siddon) with quantum noise, as :func:`napari_xvr.synthetic.make_cases` makes single views.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .geometry import Intrinsics, carm_pose, pose_from_zxy, pose_to_dict
from .io.atomic import atomic_write_text
from .io.dicom_write import write_xray_dicom
from .synthetic import detector_counts, example_ct, example_mask, structure_fiducials


def displacement(rng: np.random.Generator, max_deg: float, max_mm: float):
    """A random rigid displacement of the patient: up to `max_deg` per axis and `max_mm`."""
    return pose_from_zxy(rng.uniform(-max_deg, max_deg, 3), rng.uniform(-max_mm, max_mm, 3))


def make_view_cases(
    out_dir,
    separations_deg=(90.0,),
    n: int = 3,
    seed: int = 0,
    intrinsics: Intrinsics | None = None,
    volume=None,
    mask=None,
    max_deg: float = 8.0,
    max_mm: float = 15.0,
    device=None,
) -> Path:
    """Write cases ``case_<i>/view_<k>.dcm`` (view 0 near AP, view k at `separations_deg[k-1]`
    more primary angle) and truth.json (each view's true pose); returns truth.json."""
    from .io.volume import read_volume
    from .render import make_drr
    from .synthetic import DENSITY

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    intrinsics = intrinsics or Intrinsics(sdd=1020.0, height=128, width=128, delx=3.2, dely=3.2)
    volume, mask = volume or example_ct(), mask or example_mask()
    subject = read_volume(volume, mask, orientation="AP", density=DENSITY)
    drr = make_drr(subject, intrinsics, renderer="siddon", voxel_shift=0.5, device=device)
    rng = np.random.default_rng(seed)
    truth = {
        "volume": str(Path(volume).resolve()),
        "mask": str(Path(mask).resolve()),
        "orientation": "AP",
        "intrinsics": intrinsics.to_dict(),
        "fiducials_mm": structure_fiducials(subject).tolist(),
        "cases": {},
    }
    for index in range(n):
        primary, secondary = rng.uniform(-15, 15), rng.uniform(-10, 10)
        sid = float(rng.uniform(825, 875))
        shift = displacement(rng, max_deg, max_mm)
        folder = out_dir / f"case_{index:03d}"
        folder.mkdir(exist_ok=True)
        views = {}
        for k, angle in enumerate((0.0, *separations_deg)):
            header = (float(primary + angle), float(secondary))
            pose = carm_pose(*header, sid).compose(shift)  # shift @ carm: the patient moved
            with torch.no_grad():
                line_integral = drr(pose.to(drr.device))[0, 0]
            name = f"view_{k}"
            write_xray_dicom(
                folder / f"{name}.dcm",
                detector_counts(line_integral, rng),
                intrinsics,
                header[0],
                header[1],
                sid,
            )
            views[name] = {
                "true_pose": pose_to_dict(pose),
                "primary": header[0],
                "secondary": header[1],
                "sid": sid,
            }
        truth["cases"][folder.name] = {"displacement": pose_to_dict(shift), "views": views}
    return atomic_write_text(out_dir / "truth.json", json.dumps(truth, indent=2) + "\n")
