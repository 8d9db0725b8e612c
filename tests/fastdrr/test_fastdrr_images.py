"""FastDRR against DiffDRR's Trilinear renderer on the downsampled chest CT: images and gradients."""

from __future__ import annotations

import pytest
import torch
from diffdrr.drr import DRR
from diffdrr.pose import convert

from napari_xvr.fastdrr import FastDRR, march_slices
from napari_xvr.geometry import Intrinsics, pose_from_zxy
from napari_xvr.io.volume import read_volume
from napari_xvr.render import make_drr

POSES = [
    ([0.0, 0.0, 0.0], [0.0, 850.0, 0.0]),
    ([12.0, -7.0, 4.0], [6.0, 840.0, -9.0]),
    ([-28.0, 14.0, -3.0], [-12.0, 870.0, 14.0]),
]


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def subject(example_volume):
    return read_volume(example_volume[0], example_volume[1])


@pytest.fixture(scope="module")
def fine_subject(registration_volume):
    return read_volume(registration_volume[0], registration_volume[1])


@pytest.mark.parametrize("voxel_shift", [0.0, 0.5])
@pytest.mark.parametrize(
    "geometry",
    [
        dict(sdd=1020.0, height=64, width=64, delx=6.4, dely=6.4),
        dict(sdd=1000.0, height=48, width=60, delx=7.0, dely=8.0, x0=12.0, y0=-9.0),
    ],
)
@pytest.mark.parametrize("volume,samples_per_slice", [("fine", "auto"), ("coarse", 2)])
def test_images_match_diffdrr_trilinear(
    subject, fine_subject, geometry, voxel_shift, volume, samples_per_slice
):
    """The default ("auto") on the 2x2x1 CT; the 4x4x2 one (5 mm slices) needs 2 samples per slice.

    The reference is DiffDRR's trilinear renderer with 1500 samples per ray: with its default 500,
    its own image is up to ~9e-4 away from its converged image on the wide detector below.
    """
    subject = fine_subject if volume == "fine" else subject
    kw = dict(geometry, reverse_x_axis=True, voxel_shift=voxel_shift)
    ref = DRR(subject, renderer="trilinear", **kw)
    fast = FastDRR(subject, samples_per_slice=samples_per_slice, **kw)
    rot, xyz = zip(*POSES, strict=True)
    pose = pose_from_zxy(list(rot), list(xyz))
    with torch.no_grad():
        a, b = ref(pose, n_points=1500), fast(pose)
    assert b.shape == a.shape == (len(POSES), 1, geometry["height"], geometry["width"])
    for i in range(len(POSES)):
        assert rel_l2(b[i], a[i]) < 1e-3, POSES[i]


def test_image_matches_diffdrr_defaults(fine_subject):
    """Against DiffDRR exactly as a user calls it (500 samples per ray), at a C-arm-like pose."""
    kw = dict(sdd=1020.0, height=64, delx=6.4, voxel_shift=0.0)
    pose = pose_from_zxy([18.0, -9.0, 2.0], [8.0, 860.0, -5.0])
    with torch.no_grad():
        a = DRR(fine_subject, renderer="trilinear", **kw)(pose)
        b = FastDRR(fine_subject, **kw)(pose)
    assert rel_l2(b, a) < 1e-3


def test_batch_with_different_marching_axes_matches_single_renders(subject):
    fast = FastDRR(subject, sdd=1020.0, height=40, delx=10.0, voxel_shift=0.5)
    pose = pose_from_zxy(
        [[10.0, 5.0, 0.0], [90.0, 0.0, 0.0], [0.0, 80.0, 0.0]],
        [[0.0, 850.0, 0.0], [0.0, 850.0, 0.0], [0.0, 850.0, 0.0]],
    )
    with torch.no_grad():
        batch = fast(pose)
        singles = torch.cat(
            [
                fast(pose_from_zxy([r], [t]))
                for r, t in zip(
                    [[10.0, 5.0, 0.0], [90.0, 0.0, 0.0], [0.0, 80.0, 0.0]],
                    [[0.0, 850.0, 0.0]] * 3,
                    strict=True,
                )
            ]
        )
        ref = DRR(subject, renderer="trilinear", sdd=1020.0, height=40, delx=10.0, voxel_shift=0.5)
        expected = torch.cat(
            [
                ref(pose_from_zxy([r], [t]))
                for r, t in zip(
                    [[10.0, 5.0, 0.0], [90.0, 0.0, 0.0], [0.0, 80.0, 0.0]],
                    [[0.0, 850.0, 0.0]] * 3,
                    strict=True,
                )
            ]
        )
    # float32 sums in another order: relative differences up to 5e-5 seen on AMD EPYC
    torch.testing.assert_close(batch, singles, rtol=2e-4, atol=1e-4)
    for i in range(3):
        assert rel_l2(batch[i], expected[i]) < 2e-3


def _pose_grad(drr, weights):
    rot = torch.tensor([[0.15, -0.1, 0.05]], requires_grad=True)
    xyz = torch.tensor([[4.0, 845.0, -6.0]], requires_grad=True)
    img = drr(convert(rot, xyz, parameterization="euler_angles", convention="ZXY"))
    (img * weights).sum().backward()
    return torch.cat([rot.grad[0], xyz.grad[0]])


def test_pose_gradient_matches_diffdrr_autograd(subject):
    kw = dict(sdd=1020.0, height=48, delx=8.0, voxel_shift=0.5)
    ref, fast = DRR(subject, renderer="trilinear", **kw), FastDRR(subject, **kw)
    weights = torch.linspace(-1.0, 2.0, 48 * 48).view(1, 1, 48, 48)
    g_ref, g_fast = _pose_grad(ref, weights), _pose_grad(fast, weights)
    for part in (slice(0, 3), slice(3, 6)):  # rotation and translation separately
        err = (g_fast[part] - g_ref[part]).norm() / g_ref[part].norm()
        assert err < 0.05, (g_fast, g_ref)


@pytest.mark.parametrize("samples_per_slice", [1, 2])
def test_pose_gradient_matches_finite_differences(subject, samples_per_slice):
    fast = FastDRR(
        subject, sdd=1020.0, height=48, delx=8.0, voxel_shift=0.5, samples_per_slice=samples_per_slice
    ).double()
    weights = torch.linspace(-1.0, 2.0, 48 * 48, dtype=torch.float64).view(1, 1, 48, 48)
    rot0 = torch.tensor([[0.15, -0.1, 0.05]], dtype=torch.float64)
    xyz0 = torch.tensor([[4.0, 845.0, -6.0]], dtype=torch.float64)

    def loss(rot, xyz):
        return (fast(convert(rot, xyz, parameterization="euler_angles", convention="ZXY")) * weights).sum()

    rot, xyz = rot0.clone().requires_grad_(), xyz0.clone().requires_grad_()
    loss(rot, xyz).backward()
    analytic = torch.cat([rot.grad[0], xyz.grad[0]])
    numeric = torch.zeros(6, dtype=torch.float64)
    with torch.no_grad():
        for i, h in enumerate([2e-3] * 3 + [0.5] * 3):
            delta = torch.zeros(6, dtype=torch.float64)
            delta[i] = h
            up = loss(rot0 + delta[:3], xyz0 + delta[3:])
            down = loss(rot0 - delta[:3], xyz0 - delta[3:])
            numeric[i] = (up - down) / (2 * h)
    for part in (slice(0, 3), slice(3, 6)):
        err = (analytic[part] - numeric[part]).norm() / numeric[part].norm()
        assert err < 0.03, (analytic, numeric)


def test_make_drr_fast_is_a_diffdrr_drr_with_the_same_api(subject):
    intr = Intrinsics(sdd=1020.0, height=32, width=32, delx=12.8, dely=12.8)
    drr = make_drr(subject, intr, renderer="fast")
    assert isinstance(drr, FastDRR) and isinstance(drr, DRR)
    drr.set_intrinsics_(height=40, width=36, delx=10.0, dely=11.0)
    pose = pose_from_zxy([5.0, 0.0, 0.0], [0.0, 850.0, 0.0])
    with torch.no_grad():
        img = drr(pose)
    assert img.shape == (1, 1, 40, 36) and torch.isfinite(img).all() and img.max() > 0
    points = drr.perspective_projection(pose, torch.zeros(1, 1, 3))
    assert points.shape == (1, 1, 2)


def test_slabs_keep_the_image_and_the_gradient(fine_subject):
    """Averaging ~6 mm slabs along the rays' axis: images within 1e-2 (8e-3 at 30 deg), gradients 5 %."""
    kw = dict(sdd=1020.0, height=64, delx=6.4, voxel_shift=0.5)
    full, slab = FastDRR(fine_subject, **kw), FastDRR(fine_subject, slab_mm=6.0, **kw)
    spacing = [float(s) for s in full._affine[0, :3, :3].norm(dim=0)]
    assert [slab.slab(axis) for axis in range(3)] == [max(1, int(6.0 / s + 1e-6)) for s in spacing]
    assert full.slab(0) == 1
    for rot, xyz in POSES:
        with torch.no_grad():
            assert rel_l2(slab(pose_from_zxy([rot], [xyz])), full(pose_from_zxy([rot], [xyz]))) < 1e-2
    weights = torch.linspace(-1.0, 2.0, 64 * 64).view(1, 1, 64, 64)
    g_full, g_slab = _pose_grad(full, weights), _pose_grad(slab, weights)
    for part in (slice(0, 3), slice(3, 6)):
        assert (g_slab[part] - g_full[part]).norm() / g_full[part].norm() < 0.05
    with pytest.raises(ValueError, match="slab_mm"):
        slab.slab_mm = -1.0


def test_a_large_batch_is_marched_in_ray_blocks_like_single_renders(subject):
    """4 poses x 128^2 rays exceed one ray block: the result must not depend on the blocking."""
    fast = FastDRR(subject, sdd=1020.0, height=128, delx=3.2, voxel_shift=0.5)
    rots = [[0.0, 0.0, 0.0], [5.0, -3.0, 1.0], [-8.0, 2.0, 0.0], [3.0, 6.0, -2.0]]
    xyzs = [[0.0, 850.0, 0.0], [4.0, 840.0, -3.0], [-6.0, 860.0, 5.0], [2.0, 855.0, 1.0]]
    with torch.no_grad():
        batch = fast(pose_from_zxy(rots, xyzs))
        singles = torch.cat([fast(pose_from_zxy([r], [t])) for r, t in zip(rots, xyzs, strict=True)])
    # float32 sums in another order: relative differences up to 5e-5 seen on AMD EPYC
    torch.testing.assert_close(batch, singles, rtol=2e-4, atol=1e-4)


def test_empty_slices_are_skipped_exactly():
    """Slices of air around the patient (all zero) are not marched: the same sums and gradient
    (to float rounding: the chunks of slices start elsewhere)."""
    from napari_xvr.fastdrr.march import occupied

    generator = torch.Generator().manual_seed(0)
    slices = torch.rand(24, 1, 10, 12, generator=generator)
    slices[:5] = 0
    slices[19:] = 0
    assert occupied(slices) == (5, 19)
    assert occupied(torch.zeros(3, 1, 4, 4)) == (0, 0)
    coef = torch.stack(
        [
            torch.empty(50).uniform_(-1.2, 1.2, generator=generator),
            torch.empty(50).uniform_(-0.05, 0.05, generator=generator),
            torch.empty(50).uniform_(-1.2, 1.2, generator=generator),
            torch.empty(50).uniform_(-0.05, 0.05, generator=generator),
        ],
        dim=-1,
    )
    bounds = torch.stack(
        [
            torch.empty(50).uniform_(-3, 8, generator=generator),
            torch.empty(50).uniform_(16, 30, generator=generator),
        ],
        dim=-1,
    )
    results = []
    for span in (None, occupied(slices)):
        c = coef.clone().requires_grad_(True)
        total = march_slices(slices, c, bounds, 1, span)
        (grad,) = torch.autograd.grad(total.sum(), c)
        results.append((total.detach(), grad))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-6, atol=1e-5)
