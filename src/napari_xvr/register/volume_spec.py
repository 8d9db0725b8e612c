"""The volume side of a registration: which CT (mask, labels) to read, in which orientation and
density, and the renderer made from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import defaults
from ..errors import XvrInputError
from ..io.volume import parse_labels, read_volume
from ..render import RENDERERS, make_drr


def _named(path) -> str:
    """A file's absolute path; a name that is no file (a napari layer's) as it is."""
    path = Path(path)
    return str(path.resolve()) if path.exists() else str(path)


@dataclass
class VolumeSpec:
    """Which volume to render and how (the reference's renderer options)."""

    volume: Path
    mask: Path | None = None
    labels: str | list[int] | None = None
    orientation: str = defaults.reg("orientation")
    renderer: str = defaults.reg("renderer")
    reverse_x_axis: bool = defaults.reg("reverse_x_axis")
    voxel_shift: float = defaults.reg("voxel_shift")
    device: str | None = None
    drr_kwargs: dict = field(default_factory=dict)
    density: str = defaults.reg("density")

    def describe(self) -> dict:
        """What result.json's ``inputs`` records of the volume and the renderer."""
        return {
            "volume": _named(self.volume),
            "mask": None if self.mask is None else _named(self.mask),
            "labels": parse_labels(self.labels),
            "orientation": self.orientation,
            "renderer": self.renderer,
            "density": self.density,
            "reverse_x_axis": self.reverse_x_axis,
            "voxel_shift": self.voxel_shift,
        }

    @classmethod
    def from_inputs(cls, inputs: dict, where: str = "result.json", device=None) -> VolumeSpec:
        """The inverse of :meth:`describe`: the spec a saved result (or track) was registered
        with, for replaying it. What an older or upstream file lacks is taken as then
        (trilinear, voxel centres, AP, unflipped; the density of :func:`result_density`)."""
        from ..io.density import result_density

        volume = inputs.get("volume")
        if not isinstance(volume, str) or not volume:
            raise XvrInputError(
                f"{where}: inputs.volume names no file; it cannot be replayed "
                "(it needs the volume it was registered with)"
            )
        renderer = inputs.get("renderer") or "trilinear"
        if renderer not in RENDERERS:
            raise XvrInputError(
                f"{where}: inputs.renderer {renderer!r} is not one of "
                f"{', '.join(RENDERERS)}; fix it or delete it (trilinear is used)"
            )
        mask = inputs.get("mask") if isinstance(inputs.get("mask"), str) and inputs["mask"] else None
        return cls(
            Path(volume),
            None if mask is None else Path(mask),
            inputs.get("labels") if mask else None,
            inputs.get("orientation") or "AP",
            renderer,
            bool(inputs.get("reverse_x_axis", False)),
            float(inputs.get("voxel_shift", 0.5)),
            device,
            density=result_density(inputs),
        )

    def read(self):
        """The volume (and labelmap) as the renderer takes it (:func:`read_volume`)."""
        return read_volume(self.volume, self.mask, self.labels, self.orientation, density=self.density)

    def make_renderer(self, subject, intrinsics):
        """The DRR module for `subject` with this spec's renderer options."""
        return make_drr(
            subject,
            intrinsics,
            self.renderer,
            self.reverse_x_axis,
            self.voxel_shift,
            self.device,
            **self.drr_kwargs,
        )
