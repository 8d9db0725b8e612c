"""Registration options with the reference's names and defaults (and where we differ, why)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from .. import defaults
from ..conventions import PARAMETERIZATIONS
from ..errors import XvrInputError
from .checks.trust import TRUST_MM

OPTIMIZERS = ("lm", "adam")
METRICS = ("gmncc", "mncc", "gncc")
# maximum iterations per scale: LM stops on convergence long before; Adam on plateaus
DEFAULT_ITRS = defaults.N_ITRS
_R = defaults.reg
XRAY_MASKS = ("off", "image", "auto")  # image: register/masks/masking.valid_mask; auto: and fov.py
MAX_SLAB_MM = 100.0  # thicker than this averages away the anatomy; it is not a speed-up any more
MAX_STARTS = 1000
MAX_ITRS = 100_000


def default_itrs(optimizer: str, scales: str) -> str:
    """The optimiser's iteration caps, one per scale: the first ones, the last repeated if more."""
    caps = DEFAULT_ITRS[optimizer].split(",")
    n = max(1, len([s for s in str(scales).split(",") if s.strip()]))
    return ",".join(caps[:n] + caps[-1:] * (n - len(caps)))


@dataclass
class RegistrationOptions:
    """Everything the optimiser needs besides images, volume and initial pose.

    Defaults come from :data:`napari_xvr.defaults.REGISTER` (xvr's, except where the README's
    table says why not).  ``optimizer="lm"`` is Levenberg-Marquardt on the six pose parameters
    (:mod:`.optimiser.lm`); ``"adam"`` is xvr's Adam with ReduceLROnPlateau (``lr_reduce_factor``).
    ``n_itrs=None`` takes the optimiser's default.  ``metric`` is xvr's: ``gmncc`` blends mNCC
    and gradient-NCC with ``beta``, ``mncc`` and ``gncc`` use one term alone.  ``slab_mm`` is the
    fast renderer's slab thickness while optimising (0: off).  ``multistart > 0`` runs the first
    scale also from that many poses up to ``multistart_rot`` deg and ``multistart_xyz`` mm off the
    start (:mod:`.optimiser.multistart`) and goes on from the one with the highest similarity.
    """

    scales: str = _R("scales")
    n_itrs: str | None = _R("n_itrs")
    optimizer: str = _R("optimizer")
    slab_mm: float = _R("slab_mm")
    multistart: int = _R("multistart")
    multistart_rot: float = 20.0
    multistart_xyz: float = 60.0
    parameterization: str = _R("parameterization")
    convention: str = _R("convention")
    lr_rot: float = _R("lr_rot")
    lr_xyz: float = _R("lr_xyz")
    lr_reduce_factor: float = _R("lr_reduce_factor")
    patience: int = _R("patience")
    threshold: float = _R("threshold")
    max_n_plateaus: int = _R("max_n_plateaus")
    metric: str = _R("metric")
    patch_size: int = _R("patch_size")
    sigma: float = _R("sigma")
    fine_sigma: float = _R("fine_sigma")
    beta: float = _R("beta")
    equalize: bool = _R("equalize")
    crop: int = _R("crop")
    xray_mask: str = _R("xray_mask")
    prior_deg: float = _R("prior_deg")
    prior_mm: float = _R("prior_mm")
    drr_every: int = 10

    def __post_init__(self):
        for f in fields(self):  # every number that enters: a real one (the CLI refuses nan too)
            value = getattr(self, f.name)
            if isinstance(value, float | int) and not isinstance(value, bool) and not math.isfinite(value):
                raise XvrInputError(f"--{f.name} {value}: give a finite number")
        if self.optimizer not in OPTIMIZERS:
            raise XvrInputError(f"--optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
        if self.n_itrs is None or not str(self.n_itrs).strip():
            self.n_itrs = default_itrs(self.optimizer, self.scales)
        if not 0 <= self.slab_mm <= MAX_SLAB_MM:
            raise XvrInputError(
                f"--slab_mm {self.slab_mm}: give a thickness from 0 (slabs off) to "
                f"{MAX_SLAB_MM:g} mm (default {_R('slab_mm')})"
            )
        if not (
            0 <= self.multistart <= MAX_STARTS
            and 0 <= self.multistart_rot <= 180
            and 0 <= self.multistart_xyz <= 1000
        ):
            raise XvrInputError(
                f"--multistart {self.multistart}, --multistart_rot {self.multistart_rot}, "
                f"--multistart_xyz {self.multistart_xyz}: give 0-{MAX_STARTS} starts, 0-180 deg "
                "and 0-1000 mm (e.g. --multistart 8 --multistart_rot 20 --multistart_xyz 60)"
            )
        self.scale_list()  # validate early
        if self.parameterization not in PARAMETERIZATIONS:
            raise XvrInputError(
                f"--parameterization {self.parameterization!r}: use one of {', '.join(PARAMETERIZATIONS)}"
            )
        if not (0 <= self.lr_rot <= 10 and 0 <= self.lr_xyz <= 1000):
            raise XvrInputError(
                f"--lr_rot {self.lr_rot} / --lr_xyz {self.lr_xyz}: give step sizes "
                "in [0, 10] rad and [0, 1000] mm (defaults 0.01 and 1.0)"
            )
        if self.max_n_plateaus < 1:
            raise XvrInputError("--max_n_plateaus must be >= 1")
        if not 0 < self.lr_reduce_factor < 1:
            raise XvrInputError(f"--lr_reduce_factor {self.lr_reduce_factor}: give a number in (0, 1)")
        if self.metric not in METRICS:
            raise XvrInputError(f"--metric {self.metric!r}: use one of {', '.join(METRICS)}")
        if not 0 <= self.beta <= 1:
            raise XvrInputError(f"--beta {self.beta}: the mNCC weight must be in [0, 1] (default 0.5)")
        if not 0 <= self.threshold < 1:
            raise XvrInputError(
                f"--threshold {self.threshold}: give a relative improvement in "
                f"[0, 1) (default {_R('threshold')})"
            )
        if not 3 <= self.patch_size <= 255:
            raise XvrInputError(f"--patch_size {self.patch_size}: give 3 to 255 pixels (default 9)")
        for name in ("sigma", "fine_sigma"):
            if not 0 <= getattr(self, name) <= 100:
                raise XvrInputError(
                    f"--{name} {getattr(self, name)}: give a blur of 0 to 100 pixels (default {_R(name)})"
                )
        if self.patience < 1:
            raise XvrInputError(
                f"--patience {self.patience}: give at least 1 iteration (default {_R('patience')})"
            )
        if self.crop < 0:
            raise XvrInputError(f"--crop {self.crop}: give the pixels to remove, >= 0")
        if not (0 <= self.prior_deg <= 180 and 0 <= self.prior_mm <= 10000):
            raise XvrInputError(
                f"--prior_deg {self.prior_deg} / --prior_mm {self.prior_mm}: give "
                "0-180 deg and 0-10000 mm (0: no prior)"
            )
        if self.xray_mask not in XRAY_MASKS:
            raise XvrInputError(
                f"--xray_mask {self.xray_mask!r}: use one of "
                f"{', '.join(XRAY_MASKS)} (default {_R('xray_mask')})"
            )

    @property
    def similarity_beta(self) -> float:
        """The mNCC weight of the similarity: `beta` for gmncc, 1 for mncc, 0 for gncc."""
        return {"gmncc": self.beta, "mncc": 1.0, "gncc": 0.0}[self.metric]

    def scale_list(self) -> list[tuple[float, int]]:
        """[(scale, max iterations), ...] from the comma-separated strings."""
        try:
            scales = [float(s) for s in str(self.scales).split(",") if s.strip()]
        except ValueError as err:
            raise XvrInputError(f"--scales {self.scales!r}: give numbers, e.g. 8,4,2") from err
        try:
            itrs = [int(n) for n in str(self.n_itrs).split(",") if n.strip()]
        except ValueError as err:
            raise XvrInputError(f"--n_itrs {self.n_itrs!r}: give integers, e.g. 500,250") from err
        if not scales or not all(math.isfinite(s) and s >= 1 for s in scales):
            raise XvrInputError(
                f"--scales {self.scales!r}: give downsampling factors >= 1 "
                "(1 is the X-ray's own resolution), e.g. 8,4,2,1"
            )
        if len(itrs) == 1 and len(scales) > 1:
            itrs = itrs * len(scales)
        if len(itrs) != len(scales):
            raise XvrInputError(
                f"--n_itrs has {len(itrs)} values but --scales has {len(scales)}; give one per scale"
            )
        if not all(0 <= n <= MAX_ITRS for n in itrs):
            raise XvrInputError(f"--n_itrs {self.n_itrs!r}: give 0 to {MAX_ITRS} iterations per scale")
        return list(zip(scales, itrs, strict=True))

    def max_iterations(self) -> int:
        """The most iterations a run can take: every scale's cap, the first once per start."""
        caps = [n for _, n in self.scale_list()]
        return sum(caps) + self.multistart * caps[0]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunChecks:
    """What follows each finished run (``xvr register``'s ``--mirror_check``, ``--trust_mm``
    and ``--multistart auto``).

    With `mirror_check`, the mirrored-input check (:mod:`.checks.mirror`) and, for a result that is not
    ok, the setup check (:mod:`.checks.setup_check`); a joint registration has neither. Every result
    gets a verdict (:mod:`.checks.trust`; suspect above a predicted mTRE of `trust_mm`). With
    `retry_starts` above the options' ``multistart``, a result that is not ok is registered again
    from that many starts (``--multistart auto``: :data:`.workflows.one_xray.AUTO_STARTS`; 0: never).
    """

    mirror_check: bool = _R("mirror_check")
    trust_mm: float = TRUST_MM
    retry_starts: int = 0


@dataclass(frozen=True)
class Outputs:
    """What a run writes besides ``result.json`` and ``trajectory.csv``: the X-ray and final DRR
    images (`saveimg`, ``--saveimg``), the optimisation replayed as ``registration.gif``
    (`saveplot`, ``--saveplot``; tracking writes none), and whether an existing result folder
    (or track) is replaced (`overwrite`, ``--overwrite``)."""

    saveimg: bool = _R("saveimg")
    saveplot: bool = _R("saveplot")
    overwrite: bool = False
