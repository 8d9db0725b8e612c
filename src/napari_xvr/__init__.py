"""napari-xvr: 2D/3D X-ray to volume registration (core, CLI and napari plugin).

The core (everything outside ``napari_xvr.napari``) imports neither Qt nor napari.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-xvr")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from .errors import XvrInputError

__all__ = ["XvrInputError", "__version__"]
