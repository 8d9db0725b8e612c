"""Registration options with the reference's names and defaults (and where we differ, why)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import XvrInputError
from ..geometry import PARAMETERIZATIONS

OPTIMIZERS = ("lm", "adam")
# maximum iterations per scale: LM stops on convergence long before; Adam on plateaus
DEFAULT_ITRS = {"lm": "30,20,10", "adam": "500,250,100"}


@dataclass
class RegistrationOptions:
    """Everything the optimiser needs besides images, volume and initial pose.

    ``optimizer="lm"`` (default) is Levenberg-Marquardt on the six pose parameters
    (:mod:`.lm`); ``"adam"`` is xvr's Adam with ReduceLROnPlateau.  ``n_itrs=None`` takes
    the optimiser's default.  ``slab_mm`` is the fast renderer's slab thickness while
    optimising (0: off).  ``multistart > 0`` runs the first scale also from that many poses
    up to ``multistart_rot`` deg and ``multistart_xyz`` mm off the start (:mod:`.multistart`) and
    goes on from the one with the highest similarity.
    """

    scales: str = "8,4,2"
    n_itrs: str | None = None
    optimizer: str = "lm"
    slab_mm: float = 6.0
    multistart: int = 0
    multistart_rot: float = 20.0
    multistart_xyz: float = 60.0
    parameterization: str = "euler_angles"
    convention: str = "ZXY"
    lr_rot: float = 1e-2
    lr_xyz: float = 1.0
    patience: int = 10
    threshold: float = 1e-4
    max_n_plateaus: int = 3
    patch_size: int = 9
    sigma: float = 1.0
    beta: float = 0.5
    equalize: bool = True
    crop: int = 0
    drr_every: int = 10

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise XvrInputError(f"--optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
        if self.n_itrs is None or not str(self.n_itrs).strip():
            self.n_itrs = DEFAULT_ITRS[self.optimizer]
        if not self.slab_mm >= 0:
            raise XvrInputError(f"--slab_mm {self.slab_mm}: give a thickness >= 0 (0 turns slabs off)")
        if self.multistart < 0 or not self.multistart_rot >= 0 or not self.multistart_xyz >= 0:
            raise XvrInputError("--multistart, --multistart_rot and --multistart_xyz must be >= 0 "
                                "(e.g. --multistart 8 --multistart_rot 20 --multistart_xyz 60)")
        self.scale_list()  # validate early
        if self.parameterization not in PARAMETERIZATIONS:
            raise XvrInputError(
                f"--parameterization {self.parameterization!r}: use one of {', '.join(PARAMETERIZATIONS)}"
            )
        if self.lr_rot < 0 or self.lr_xyz < 0:
            raise XvrInputError("--lr_rot and --lr_xyz must be >= 0")
        if self.max_n_plateaus < 1:
            raise XvrInputError("--max_n_plateaus must be >= 1")

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
        if not scales or any(s <= 0 for s in scales):
            raise XvrInputError(f"--scales {self.scales!r}: give positive numbers, e.g. 8,4")
        if len(itrs) == 1 and len(scales) > 1:
            itrs = itrs * len(scales)
        if len(itrs) != len(scales):
            raise XvrInputError(
                f"--n_itrs has {len(itrs)} values but --scales has {len(scales)}; give one per scale"
            )
        if any(n < 0 for n in itrs):
            raise XvrInputError("--n_itrs values must be >= 0")
        return list(zip(scales, itrs, strict=True))

    def max_iterations(self) -> int:
        """The most iterations a run can take: every scale's cap, the first once per start."""
        caps = [n for _, n in self.scale_list()]
        return sum(caps) + self.multistart * caps[0]

    def to_dict(self) -> dict:
        return asdict(self)
