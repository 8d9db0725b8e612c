"""The comparison images: tiles alternate, a DRR that explains the X-ray leaves no residual, a
shift leaves one at the edges, and the DRR's edges sit on its object's border."""

import numpy as np
import pytest

from napari_xvr.compare import checkerboard, compare, difference, edges

rng = np.random.default_rng(0)
XRAY = np.zeros((64, 64))
XRAY[16:48, 20:44] = 1.0
XRAY += 0.01 * rng.standard_normal(XRAY.shape)


def test_checkerboard_alternates_the_two_images():
    drr = 1.0 - XRAY  # its inverse: every tile tells which image it shows
    board = checkerboard(XRAY, drr, tiles=4)  # 16 px tiles
    np.testing.assert_allclose(board[:16, :16], checkerboard(XRAY, XRAY, 4)[:16, :16])
    assert board[24, 24] > 0.9 and board[24, 40] < 0.1  # tile (1,1): X-ray; tile (1,2): the DRR


def test_a_drr_that_explains_the_xray_leaves_no_residual_and_a_shift_does():
    assert np.abs(difference(XRAY, 2.0 * XRAY + 3.0)).max() < 1e-6
    shifted = np.roll(XRAY, 3, axis=1)
    residual = np.abs(difference(XRAY, shifted))
    assert residual[30, 20:23].mean() > 0.5 and residual[30, 30] < 0.2  # at the edge, not inside


def test_edges_lie_on_the_border():
    found = edges(XRAY)
    rows, cols = np.nonzero(found)
    assert found[32, 18:22].any() and found[32, 42:46].any() and not found[32, 30]
    assert rows.min() >= 12 and rows.max() <= 51 and cols.min() >= 16 and cols.max() <= 47


def test_modes_and_bad_input():
    assert compare(XRAY, XRAY, "overlay") is None and compare(XRAY, XRAY, "flicker") is None
    assert compare(XRAY, XRAY, "edges").dtype == np.float32
    with pytest.raises(ValueError, match="use one of"):
        compare(XRAY, XRAY, "blend")
    with pytest.raises(ValueError, match="same size"):
        compare(XRAY, XRAY[:10], "difference")
