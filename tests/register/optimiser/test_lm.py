"""Levenberg-Marquardt: the Gram-matrix Hessian against explicit Jacobians, and LM on the real CT."""

import numpy as np
import pytest
import torch
from torch.nn.functional import unfold

from napari_xvr.errors import XvrInputError
from napari_xvr.geometry import pose_from_dict
from napari_xvr.io import read_volume, read_xray
from napari_xvr.register import DicomInitializer, RegistrationOptions
from napari_xvr.register.engine import _preparer, stage_intrinsics
from napari_xvr.register.optimiser.gram import gauss_newton_hessian, ncc_gram, similarity_gram
from napari_xvr.register.optimiser.lm import PoseLM
from napari_xvr.register.optimiser.similarity import Similarity, local_ncc
from napari_xvr.render import make_drr, set_intrinsics


def smooth_images(n: int, size: int = 20, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    base = torch.randn(1, 1, size, size).cumsum(-1).cumsum(-2)
    return base + 0.3 * torch.randn(n, 1, size, size).cumsum(-1)


@pytest.mark.parametrize("patch", [None, 5])
def test_gram_entries_are_the_similarity_ncc(patch):
    images = smooth_images(4)
    gram = ncc_gram(images, patch)
    for i in range(4):
        for j in range(4):
            expected = local_ncc(images[i : i + 1].double(), images[j : j + 1].double(), patch)
            assert gram[i, j].item() == pytest.approx(expected.item(), abs=1e-9)
    sim = Similarity(patch_size=5, sigma=1.0, beta=0.4)
    full = similarity_gram(sim, images)
    values = sim(images[:1].expand(4, -1, -1, -1), images)
    assert torch.allclose(full[0].float(), values, atol=1e-5)


def _z_vectors(images: torch.Tensor, patch: int | None, eps: float = 1e-5) -> torch.Tensor:
    """Explicit normalised residual vectors, scaled so that <z_i, z_j> is the mean window NCC."""
    x = images.double()
    # (n, pixels per window, windows): the whole image, or every patch x patch window
    windows = x.flatten(1).unsqueeze(-1) if patch is None else unfold(x, patch)
    centred = windows - windows.mean(dim=1, keepdim=True)
    z = centred / (centred.pow(2).mean(dim=1, keepdim=True) + eps).sqrt()
    return z.flatten(1) / (windows.shape[1] * windows.shape[2]) ** 0.5


@pytest.mark.parametrize("patch", [None, 5])
def test_hessian_from_the_gram_matrix_equals_explicit_jacobian(patch):
    images = smooth_images(7, seed=1)
    steps = torch.tensor([0.5, 1.0, 2.0, 0.1, 3.0, 1.5], dtype=torch.float64)
    z = _z_vectors(images, patch)
    jacobian = (z[1:] - z[:1]) / steps[:, None]  # (6, residuals)
    explicit = jacobian @ jacobian.T
    ours = gauss_newton_hessian(ncc_gram(images, patch), steps)
    assert torch.allclose(ours, explicit, rtol=1e-6, atol=1e-9 * float(explicit.abs().max()))


@pytest.fixture(scope="module")
def case(registration_volume, synthetic_cases):
    folder, truth = synthetic_cases
    xray = read_xray(folder / "xray_002.dcm")
    drr = make_drr(read_volume(*registration_volume), xray.intrinsics, renderer="fast")
    drr.slab_mm = 6.0
    return drr, xray, pose_from_dict(truth["cases"]["xray_002"]["true_pose"])


def test_lm_raises_the_similarity_monotonically_and_stops_by_itself(case):
    drr, xray, _ = case
    intr = stage_intrinsics(xray.intrinsics, 4, 0)
    set_intrinsics(drr, intr)
    prep = _preparer((intr.height, intr.width), True)
    solver = PoseLM(
        drr, prep(xray.preprocessed().float()), prep, Similarity(9, 1.0, 0.5), step_mm=intr.delx / 6
    )
    steps = list(solver.run(DicomInitializer()(xray), max_itrs=40))
    accepted = [s.evaluation.similarity for s in steps if s.accepted]
    assert len(steps) < 40  # converged before the cap
    assert np.all(np.diff(accepted) > 0)
    assert accepted[-1] > accepted[0] + 0.01
    hessian = steps[-1].evaluation.hessian
    assert torch.allclose(hessian, hessian.T) and (torch.linalg.eigvalsh(hessian) > -1e-9).all()


def test_optimizer_option_and_its_iteration_defaults():
    assert RegistrationOptions().optimizer == "lm"
    assert RegistrationOptions().n_itrs == "30,20,30,30"
    assert RegistrationOptions(optimizer="adam").n_itrs == "500,250,100,50"
    assert RegistrationOptions(optimizer="adam", n_itrs="7").n_itrs == "7"
    # other scales without --n_itrs: the first caps, the last one repeated
    assert RegistrationOptions(scales="4,2").n_itrs == "30,20"
    assert RegistrationOptions(scales="16,8,4,2,1").n_itrs == "30,20,30,30,30"
    with pytest.raises(XvrInputError, match="--optimizer 'bfgs'"):
        RegistrationOptions(optimizer="bfgs")
    with pytest.raises(XvrInputError, match="--slab_mm"):
        RegistrationOptions(slab_mm=-1)


def _solver(case, scale=8):
    drr, xray, _ = case
    intr = stage_intrinsics(xray.intrinsics, scale, 0)
    set_intrinsics(drr, intr)
    prep = _preparer((intr.height, intr.width), True)
    return PoseLM(
        drr, prep(xray.preprocessed().float()), prep, Similarity(9, 1.0, 0.5), step_mm=intr.delx / 6
    )


def _starts(case, n):
    from napari_xvr.geometry import pose_from_zxy, pose_to_zxy

    rot, xyz = pose_to_zxy(case[2])
    rng = np.random.default_rng(3)
    return [pose_from_zxy(rot + rng.uniform(-6, 6, 3), xyz + rng.uniform(-15, 15, 3)) for _ in range(n)]


def test_a_batch_of_evaluations_equals_them_one_by_one(case):
    """The multi-start's batched renders give each start what its own evaluation gives."""
    from napari_xvr.register.optimiser.lm import _Ask

    solver = _solver(case)
    params = [solver.params_of(pose) for pose in _starts(case, 3)]
    alone = [solver.evaluate(p) for p in params]
    reuse = alone[1].hessian  # one of them reuses a Hessian, as LM does between refreshes
    batch = solver.evaluate_many([_Ask(params[0], None), _Ask(params[1], reuse), _Ask(params[2], None)])
    for one, many in zip(alone, batch, strict=True):
        assert many.similarity == pytest.approx(one.similarity, abs=1e-5)
        assert torch.allclose(
            many.gradient, one.gradient, rtol=1e-3, atol=1e-4 * float(one.gradient.abs().max())
        )
        assert torch.allclose(
            many.hessian, one.hessian, rtol=1e-3, atol=1e-4 * float(one.hessian.abs().max())
        )
        assert torch.allclose(many.pose.matrix, one.pose.matrix, atol=1e-5)
        assert many.moving.shape == one.moving.shape
    assert batch[1].hessian is reuse


def test_lockstep_runs_take_the_steps_of_separate_runs(case):
    from napari_xvr.evaluate import mtre
    from napari_xvr.register.checks.uncertainty import volume_points

    solver = _solver(case)
    starts = _starts(case, 3)
    together: dict[int, list] = {0: [], 1: [], 2: []}
    for index, step in solver.run_many(starts, max_itrs=12):
        together[index].append(step)
    for index, start in enumerate(starts):
        alone = list(solver.run(start, max_itrs=12))
        ours = together[index]
        # float rounding differs between a batch and one render: the convergence test may
        # stop one step sooner or later; the path and where it ends are the same
        assert [s.accepted for s in ours[:4]] == [s.accepted for s in alone[:4]]
        best = lambda steps: [s for s in steps if s.accepted][-1].evaluation  # noqa: E731
        a, b = best(ours), best(alone)
        assert abs(a.similarity - b.similarity) < 0.02 * (1 - b.similarity) + 1e-5, (
            a.similarity,
            b.similarity,
        )
        # at this coarse scale (16 px of 25.6 mm) the optimum is flat, along the rays most:
        # both end within a pixel of each other (mTRE over the volume)
        apart = mtre(a.pose, b.pose, volume_points(solver.drr))
        assert apart < 25.6, apart


def test_the_renderers_jacobian_is_the_renders_finite_difference(case):
    """`image_jacobian` of a FastDRR render (no marching of its own) against central
    differences of real renders, per pose parameter."""
    from diffdrr.pose import convert

    from napari_xvr.register.optimiser.jacobian import image_jacobian

    solver = _solver(case, scale=4)
    drr = case[0]
    params = solver.params_of(case[2]) + torch.tensor(
        [0.02, -0.01, 0.015, 3.0, -2.0, 4.0], dtype=torch.float64
    )

    def render(p: torch.Tensor) -> torch.Tensor:
        p = p.float()
        return drr(convert(p[:, :3], p[:, 3:], parameterization="euler_angles", convention="ZXY"))

    def error(k: int, h: float) -> float:
        nudge = torch.zeros(1, 6, dtype=torch.float64)
        nudge[0, k] = h
        with torch.no_grad():
            central = (render(params + nudge) - render(params - nudge)) / (2 * h)
        return float((jacobian[k] - central[0]).norm() / central.norm())

    p = params[None].float().requires_grad_(True)
    jacobian = image_jacobian(render(p), p)[0]  # (6, 1, H, W)
    # the exact derivative of a piecewise-bilinear image: differences over steps that cross
    # fewer voxel edges come closer to it (1-3 % at 0.015 mm, 6-12 % at 0.15 mm)
    for k in range(6):
        fine, coarse = (1e-4, 1e-3) if k < 3 else (0.015, 0.15)  # rad, mm
        assert error(k, fine) < min(0.05, error(k, coarse)), k


def test_the_hessian_from_the_jacobian_agrees_with_six_nudged_renders(case):
    """FastDRR's Hessians come from its Jacobian; with gradient checkpointing (no second
    backward) from six nudged renders, as with DiffDRR's renderers: the two agree, and so do
    the uncertainties they give (the square roots of the inverse's diagonal)."""
    solver = _solver(case, scale=4)
    drr = case[0]
    params = solver.params_of(case[2]) + torch.tensor(
        [0.01, -0.005, 0.01, 2.0, -1.5, 3.0], dtype=torch.float64
    )
    assert solver.linearised()
    linear = solver.evaluate(params)
    drr.checkpoint_gradients = True
    try:
        assert not solver.linearised()
        nudged = solver.evaluate(params)
    finally:
        drr.checkpoint_gradients = False
    assert linear.fresh and nudged.fresh
    assert linear.similarity == pytest.approx(nudged.similarity, abs=1e-6)
    assert torch.allclose(
        linear.gradient, nudged.gradient, rtol=1e-4, atol=1e-5 * float(nudged.gradient.abs().max())
    )
    a, b = nudged.hessian, linear.hessian
    assert torch.allclose(b, b.T)
    assert float((a - b).norm() / a.norm()) < 0.1
    sigma_ratio = (torch.linalg.inv(b).diagonal() / torch.linalg.inv(a).diagonal()).sqrt()
    assert ((sigma_ratio > 0.8) & (sigma_ratio < 1.25)).all(), sigma_ratio
