"""Reading and writing: volumes, X-ray images with their intrinsics, results."""

from .atomic import atomic_dir, atomic_write_bytes, atomic_write_text
from .volume import read_image, read_volume
from .xray import XRay, preprocess_xray, read_xray

__all__ = [
    "XRay",
    "atomic_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "preprocess_xray",
    "read_image",
    "read_volume",
    "read_xray",
]
