"""`xvr evaluate`: mTRE, mPE, mRPE and geodesic errors of results against a true pose."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..conventions import METRIC_DEFINITIONS
from ._help import CONTEXT, UserPath

METRICS_EPILOG = "\b\nMetrics (xvr's definitions):\n" + "\n".join(
    f"  {name}: {text}" for name, text in METRIC_DEFINITIONS.items()
)


@click.command(context_settings=CONTEXT, epilog=METRICS_EPILOG)
@click.argument("result", nargs=-1, required=True, type=UserPath(exists=True))
@click.option(
    "-t",
    "--true",
    "true_path",
    type=UserPath(exists=True),
    required=True,
    help="True pose: a result folder/result.json or xvr .pth, a JSON 4x4 matrix, a "
    "truth.json of synthetic cases (matched by X-ray name), or a DICOM (header pose)",
)
@click.option(
    "-f",
    "--fiducials",
    type=UserPath(exists=True),
    default=None,
    help="3D points in mm: CSV with x,y,z columns or JSON list (default: the truth.json's)",
)
@click.option(
    "--orientation", type=click.Choice(["AP", "PA"]), default=None, help="C-arm frame (default: the result's)"
)
@click.option("--json", "json_out", type=UserPath(), default=None, help="Also write the table as JSON")
def evaluate(result, true_path, fiducials, orientation, json_out):
    """Registration errors (mm) of RESULT folders (or upstream xvr <stem>.pth files) against a
    true pose. An xvr .pth stores no orientation: pass --orientation PA for PA volumes."""
    from ..errors import XvrInputError
    from ..evaluate import evaluate_poses, read_fiducials, read_true_pose
    from ..geometry import Intrinsics
    from ..io.atomic import atomic_write_text
    from ..io.result import read_result, result_pose

    if fiducials is None:
        data = json.loads(Path(true_path).read_text()) if true_path.endswith(".json") else {}
        if "fiducials_mm" not in data:
            raise XvrInputError("--fiducials is required unless --true is a truth.json with fiducials")
        fiducials = true_path
    points = read_fiducials(fiducials)
    rows = {}
    for item in result:
        data = read_result(item)
        stem = _stem(data, item)
        orient = orientation or data["inputs"].get("orientation", "AP")
        true = read_true_pose(true_path, stem, orient)
        intr = Intrinsics(**data["intrinsics"])
        row = {
            "init": evaluate_poses(
                true, result_pose({"init_pose": data["init_pose"]}), points, intr, orient
            ).to_dict(),
            "final": evaluate_poses(true, result_pose(data), points, intr, orient).to_dict(),
        }
        predicted = ((data.get("checks") or {}).get("uncertainty") or {}).get("predicted_mtre_mm")
        row["predicted_mtre_mm"] = predicted
        row["verdict"] = data.get("verdict")
        rows[stem] = row
        f = row["final"]
        told = (
            ""
            if predicted is None
            else f" [predicted {predicted:.3f} mm over the volume, "
            + f"{(row['verdict'] or {}).get('status', 'no verdict')}]"
        )
        click.echo(
            f"{stem}: mTRE {f['mtre']:.3f} mm{told}  mPE {f['mpe']:.3f} mm  "
            f"mRPE {f['mrpe']:.3f} mm  geodesic {f['geodesic_mm']:.3f} mm  "
            f"rotation {f['rotation_error_deg']:.3f} deg  "
            f"(initial mTRE {row['init']['mtre']:.2f} mm)"
        )
    if len(rows) > 1:
        import numpy as np

        final = np.array([r["final"]["mtre"] for r in rows.values()])
        click.echo(
            f"mTRE over {len(final)}: median {np.median(final):.3f}  max {final.max():.3f}  "
            f"under 1 mm: {(final < 1).sum()}/{len(final)}"
        )
    if json_out:
        atomic_write_text(json_out, json.dumps(rows, indent=2) + "\n")


def _stem(data: dict, item) -> str:
    """The X-ray's name: from the result's inputs, else the RESULT folder or .pth file name."""
    path = Path(data.get("inputs", {}).get("xray") or item)
    if path.name == "result.json":
        path = path.parent
    return path.name.rsplit(".", 1)[0] if path.suffix else path.name


COMMANDS = [evaluate]
