"""Degradations of the sample chest X-ray: each changes what it says it changes, and nothing else."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
import torch

from napari_xvr import degrade
from napari_xvr.io import read_volume, read_xray

IMAGE_FUNCTIONS = {
    "rect": lambda im, rng: degrade.collimate(im, rng, "rect"),
    "circle": lambda im, rng: degrade.collimate(im, rng, "circle"),
    "text": degrade.burn_in_text,
    "wire": lambda im, rng: degrade.add_instrument(im, rng, "wire"),
    "screw": lambda im, rng: degrade.add_instrument(im, rng, "screw"),
    "plate": lambda im, rng: degrade.add_instrument(im, rng, "plate"),
}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """(X-ray image, ct path) of the sample data (made in a temporary cache unless one is set)."""
    if not os.environ.get("NAPARI_XVR_CACHE"):
        os.environ["NAPARI_XVR_CACHE"] = str(tmp_path_factory.mktemp("napari_xvr_cache"))
    from napari_xvr.napari._sample_data import sample_files, sample_xray_file

    return read_xray(sample_xray_file()[0]).image, sample_files()[0]


@pytest.mark.parametrize("name", IMAGE_FUNCTIONS)
def test_changes_only_what_it_reports_and_is_seeded(sample, name):
    image = sample[0]
    before = image.copy()
    out, changed = IMAGE_FUNCTIONS[name](image, np.random.default_rng(7))
    assert np.array_equal(image, before)  # the input is left alone
    assert out.dtype == np.float32 and out.shape == image.shape
    assert changed.dtype == bool and changed.shape == image.shape and changed.any()
    assert np.array_equal(out[~changed], image[~changed])
    assert (out != image)[changed].all()
    again, changed_again = IMAGE_FUNCTIONS[name](image, np.random.default_rng(7))
    assert np.array_equal(out, again) and np.array_equal(changed, changed_again)
    other, _ = IMAGE_FUNCTIONS[name](image, np.random.default_rng(8))
    assert not np.array_equal(out, other)


@pytest.mark.parametrize("shape", ["rect", "circle"])
def test_collimator_shadow_is_full_attenuation(sample, shape):
    """No dose outside the blades: the bright end of a bone-bright image, constant, soft-edged."""
    image = sample[0]
    for seed in range(4):
        out, changed = degrade.collimate(image, np.random.default_rng(seed), shape, edge_px=2.0)
        plateau = out == image.max()
        corners = [out[0, 0], out[0, -1], out[-1, 0], out[-1, -1]]
        assert all(c == image.max() for c in corners)
        assert plateau.sum() > 0.8 * changed.sum()  # mostly the constant shadow, a thin ramp
        ramp = changed & ~plateau
        assert ((out[ramp] > image[ramp]) & (out[ramp] < image.max())).all()
        assert 0.05 < changed.mean() < 0.7
    dark, dark_changed = degrade.collimate(-image, np.random.default_rng(0), shape, bone_bright=False)
    assert (dark[dark_changed] < -image[dark_changed]).all()
    assert dark.min() == (-image).min()


def test_text_is_saturated_in_the_corners(sample):
    image = sample[0]
    h, w = image.shape
    for seed in range(4):
        out, changed = degrade.burn_in_text(image, np.random.default_rng(seed))
        assert (out[changed] == image.max()).all()
        rows, cols = np.nonzero(changed)
        near_edge = (np.minimum(rows, h - 1 - rows) < 0.25 * h) & (np.minimum(cols, w - 1 - cols) < 0.45 * w)
        assert near_edge.all()
        assert 0.005 < changed.mean() < 0.1


def test_text_within_the_open_field(sample):
    image = sample[0]
    rng = np.random.default_rng(1)
    collimated, shadow = degrade.collimate(image, rng, "rect", tilt_deg=0)
    out, changed = degrade.burn_in_text(collimated, rng, within=~shadow)
    assert changed.any() and not (changed & shadow).any()


def test_instrument_adds_attenuation_without_saturating(sample):
    image = sample[0]
    for kind in ("wire", "screw", "plate"):
        out, changed = degrade.add_instrument(image, np.random.default_rng(3), kind)
        assert (out[changed] > image[changed]).all() and out.max() <= image.max()
        dark, dark_changed = degrade.add_instrument(-image, np.random.default_rng(3), kind, bone_bright=False)
        assert (dark[dark_changed] < -image[dark_changed]).all()
    with pytest.raises(ValueError, match="kind"):
        degrade.add_instrument(image, np.random.default_rng(0), "scalpel")


def test_images_must_be_2d():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        degrade.collimate(np.zeros((2, 8, 8), np.float32), np.random.default_rng(0))


def _world(subject, ijk) -> np.ndarray:
    """World position (as the reader centres it) of voxel `ijk` of `subject`'s density."""
    return (np.asarray(subject.density.affine) @ np.append(np.asarray(ijk, float), 1.0))[:3]


def test_cropped_ct_keeps_voxels_in_place(sample, tmp_path):
    ct = sample[1]
    full = nib.load(str(ct))
    centred = degrade.crop_volume(ct, tmp_path / "centred.nii.gz", keep=(1.0, 1.0, 0.7))
    kept = round(full.shape[2] * 0.7)
    assert centred.shape == (full.shape[0], full.shape[1], kept)
    data = np.asarray(nib.load(str(centred.path)).dataobj)
    k0 = centred.start[2]
    assert np.array_equal(data, np.asarray(full.dataobj)[:, :, k0 : k0 + kept])

    off = degrade.crop_volume(ct, tmp_path / "top.nii.gz", keep=(0.8, 1.0, 0.6), where=(0.0, 0.5, 1.0))
    assert off.start[0] == 0 and off.start[2] + off.shape[2] == full.shape[2]
    whole, cut = read_volume(ct), read_volume(off.path)
    for ijk in ([0, 0, 0], [5, 17, 9]):  # the same voxel, seen through the reader's centring
        same = np.add(ijk, off.start)
        assert np.allclose(_world(cut, ijk), _world(whole, same) + off.world_shift_mm, atol=1e-3)
    assert np.linalg.norm(off.world_shift_mm) > 10
    assert np.linalg.norm(centred.world_shift_mm) < 0.5 * max(full.header.get_zooms())


def test_pose_in_copy_renders_the_same_anatomy(sample, tmp_path):
    """The full CT's DRR at a pose is the copy's at pose_in_copy (up to a scale) where the copy
    has anatomy; at the unmoved pose it is not."""
    from napari_xvr.geometry import Intrinsics, pose_from_matrix, pose_from_zxy
    from napari_xvr.render import make_drr

    ct = sample[1]
    off = degrade.crop_volume(ct, tmp_path / "side.nii.gz", keep=(1.0, 1.0, 0.6), where=(0.5, 0.5, 0.0))
    detector = Intrinsics(sdd=1020.0, height=48, width=48, delx=6.4, dely=6.4)
    pose = pose_from_zxy([0.0, 0.0, 0.0], [0.0, 850.0, 0.0])
    moved = pose_from_matrix(off.pose_in_copy(pose.matrix[0].double().numpy()))
    with torch.no_grad():
        a = make_drr(read_volume(ct), detector, renderer="trilinear")(pose)[0, 0]
        b = make_drr(read_volume(off.path), detector, renderer="trilinear")(moved.to(torch.float32))[0, 0]
        naive = make_drr(read_volume(off.path), detector, renderer="trilinear")(pose)[0, 0]
    inside = b > 0.5 * b.max()
    assert inside.float().mean() > 0.2

    def off_by(x):  # the reader rescales densities per volume: equal up to one factor
        ref, other = a[inside] / a[inside].mean(), x[inside] / x[inside].mean()
        return (ref - other).abs().mean().item()

    assert off_by(b) < 0.01 and off_by(naive) > 0.1
