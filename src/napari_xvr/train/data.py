"""Training volumes: one CT (patient-specific) or a folder of CTs (patient-agnostic pretraining).

Masks are matched to volumes by file name; volumes are drawn with ``--sample_weights`` and
optionally cropped to random ``--patch_size`` blocks. Volumes are read in the main process and
kept in a small cache (``--num_workers``/``--pin_memory`` are accepted for compatibility).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch

from ..errors import XvrInputError
from ..io.volume import VOLUME_SUFFIXES, file_suffix, read_image, read_volume
from .config import read_sample_weights

#: the highest label a training mask may hold (each label value is one rendered channel)
MAX_LABEL = 1024


def _volume_files(folder: Path) -> list[Path]:
    files = sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.is_file() and file_suffix(p) in VOLUME_SUFFIXES
    )
    if not files:
        raise XvrInputError(f"-v {folder}: no NIfTI/NRRD/MHA volumes in this folder")
    return files


def _stem(path: Path) -> str:
    return path.name[: -len(file_suffix(path))]


def match_masks(volumes: list[Path], maskpath) -> list[Path | None]:
    """The mask with the same name (any volume suffix) for each volume, or None."""
    if maskpath is None:
        return [None] * len(volumes)
    folder = Path(maskpath)
    if not folder.is_dir():
        raise XvrInputError(f"-m {folder}: with a folder of volumes, give a folder of masks")
    masks = {_stem(p): p for p in _volume_files(folder)}
    missing = [v.name for v in volumes if _stem(v) not in masks]
    if missing:
        raise XvrInputError(f"-m {folder}: no mask named like {', '.join(missing[:5])}")
    return [masks[_stem(v)] for v in volumes]


class VolumeSet:
    """The training volumes, a weighted draw of one per step and its (cropped) Subject."""

    def __init__(
        self,
        volpath,
        maskpath=None,
        orientation="AP",
        patch_size=None,
        sample_weights=None,
        cache_size: int = 8,
    ):
        path = Path(volpath)
        if not path.exists():
            raise XvrInputError(f"-v {path}: no such volume file or folder")
        if path.is_dir() and not any(path.glob("*.dcm")):
            self.volumes = _volume_files(path)
            self.masks = match_masks(self.volumes, maskpath)
        else:
            if maskpath is not None and Path(maskpath).is_dir():
                raise XvrInputError(f"-m {maskpath}: with a single volume, give a single mask file")
            self.volumes, self.masks = [path], [None if maskpath is None else Path(maskpath)]
        n = len(self.volumes)
        weights = read_sample_weights(sample_weights, n) if sample_weights else [1.0] * n
        self.weights = torch.tensor(weights, dtype=torch.float64)
        self.orientation = orientation
        self.patch_size = patch_size
        self.cache: OrderedDict[int, tuple] = OrderedDict()
        self.cache_size = cache_size
        self.frame_center_ras = [float(v) for v in read_image(self.volumes[0]).get_center()]
        self.last_centre_ras = self.frame_center_ras

    def __len__(self) -> int:
        return len(self.volumes)

    @property
    def single(self) -> bool:
        return len(self.volumes) == 1 and self.patch_size is None

    def draw(self) -> int:
        """Index of the next volume (torch's global RNG)."""
        if len(self.volumes) == 1:
            return 0
        return int(torch.multinomial(self.weights, 1).item())

    def images(self, index: int):
        """(volume, mask) torchio images, cached (raw, before centring)."""
        if index in self.cache:
            self.cache.move_to_end(index)
            return self.cache[index]
        vol = read_image(self.volumes[index])
        mask = None if self.masks[index] is None else read_image(self.masks[index], label=True)
        if mask is not None and tuple(mask.shape) != tuple(vol.shape):
            raise XvrInputError(
                f"-m {self.masks[index]}: mask shape {tuple(mask.shape[1:])} differs "
                f"from the volume's {tuple(vol.shape[1:])} ({self.volumes[index]}); "
                "resample it onto the volume grid"
            )
        self.cache[index] = (vol, mask)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return vol, mask

    def validate(self) -> list[tuple[int, ...]]:
        """Read and check every volume and mask before any work; returns the volumes' shapes.

        Each volume must be a readable 3D image with finite, non-constant voxels; each mask must
        lie on its volume's grid and hold whole, non-negative labels, not all 0.
        """
        shapes = []
        for index, (volume, mask) in enumerate(zip(self.volumes, self.masks, strict=True)):
            read_volume(volume, mask, orientation=self.orientation)  # file-named messages
            vol, lab = self.images(index)
            shapes.append(tuple(int(n) for n in vol.shape[1:]))
            if lab is None:
                continue
            low, high = (float(v) for v in torch.aminmax(lab.data))
            if high <= 0 and low >= 0:
                raise XvrInputError(
                    f"-m {mask}: the labelmap is empty (every voxel is 0); give the "
                    "segmentation of this volume, or train without -m"
                )
            if low < 0:
                raise XvrInputError(
                    f"-m {mask}: the labelmap holds negative values (down to {low:g}); "
                    "labels are whole numbers >= 0 (is this a CT given as the mask?)"
                )
            if high > MAX_LABEL:
                raise XvrInputError(
                    f"-m {mask}: the labelmap holds a label {high:g}; labels above "
                    f"{MAX_LABEL} each cost a rendered channel (is this a CT given "
                    "as the mask?); renumber the labels"
                )
        return shapes

    def subject(self, index: int):
        """A DiffDRR Subject of volume `index` (a random crop if patch_size is set)."""
        import torchio as tio

        vol, mask = self.images(index)
        if self.patch_size is not None:
            shape = vol.shape[1:]
            size = [min(p, s) for p, s in zip(self.patch_size, shape, strict=True)]
            start = [int(torch.randint(0, s - p + 1, (1,)).item()) for p, s in zip(size, shape, strict=True)]
            sl = tuple(slice(a, a + p) for a, p in zip(start, size, strict=True))
            affine = vol.affine.copy()
            affine[:3, 3] = vol.affine[:3, :3] @ start + vol.affine[:3, 3]
            vol = tio.ScalarImage(tensor=vol.data[(slice(None), *sl)].clone(), affine=affine)
            if mask is not None:
                mask = tio.LabelMap(tensor=mask.data[(slice(None), *sl)].clone(), affine=affine)
        else:
            vol = tio.ScalarImage(tensor=vol.data, affine=vol.affine.copy())
            if mask is not None:
                mask = tio.LabelMap(tensor=mask.data, affine=mask.affine.copy())
        self.last_centre_ras = [float(v) for v in vol.get_center()]
        return read_volume(vol, mask, orientation=self.orientation)
