"""Upstream xvr 0.1.0 (PyPI `xvreg`, module `xvr`) run beside napari-xvr on the CPU.

xvreg is installed apart from the venv's site-packages (``pip install --no-deps --target .upstream
xvreg==0.1.0``, as `.ci/run` does) so that its `xvr` console script does not replace ours; this
conftest puts that folder on sys.path.  Its dependencies come with the `conformance` extra.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

UPSTREAM = Path(os.environ.get("XVR_UPSTREAM", Path(__file__).resolve().parents[2] / ".upstream"))
if UPSTREAM.is_dir() and str(UPSTREAM) not in sys.path:
    sys.path.append(str(UPSTREAM))


def _upstream_version() -> str | None:
    from importlib.metadata import PathDistribution

    found = sorted(UPSTREAM.glob("xvreg-*.dist-info"))
    return PathDistribution(found[0]).version if found else None


@pytest.fixture(scope="session")
def upstream():
    """The upstream `xvr` package (0.1.0), or a failure that says how to install it."""
    version = _upstream_version()
    if version is None:
        pytest.fail(
            f"upstream xvr is not installed in {UPSTREAM}: run "
            "`pip install --no-deps --target .upstream xvreg==0.1.0` (as .ci/run does)"
        )
    assert version == "0.1.0", f"the conformance suite is written against xvreg 0.1.0, found {version}"
    import xvr

    return xvr
