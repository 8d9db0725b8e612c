"""Landmark pairs -> pose: the PnP solve against DiffDRR's own projection, the files people bring
(CSV, JSON, 3D Slicer's .mrk.json in LPS), their mistakes, and `xvr register landmarks`."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffdrr.data import read
from diffdrr.drr import DRR

from napari_xvr.errors import XvrInputError
from napari_xvr.evaluate import mtre
from napari_xvr.geometry import Intrinsics, pose_from_dict, pose_from_zxy
from napari_xvr.io.landmarks import read_landmarks, volume_centre_ras
from napari_xvr.register.pnp import solve_pose

DETECTOR = Intrinsics(sdd=1020.0, height=256, width=256, delx=1.6, dely=1.6)
POINTS = np.array(
    [
        [-60.0, 20, 40],
        [55, -10, 35],
        [0, 40, -60],
        [-30, -35, -20],
        [40, 30, -45],
        [10, -20, 70],
        [-50, 5, -70],
        [25, 45, 10],
    ]
)


def diffdrr_pixels(subject, pose, points, detector=DETECTOR):
    """Where DiffDRR projects `points` (world mm), as (column, row) with centres at integers."""
    drr = DRR(
        subject,
        sdd=detector.sdd,
        height=detector.height,
        width=detector.width,
        delx=detector.delx,
        reverse_x_axis=False,
    )
    pts = torch.as_tensor(points, dtype=torch.float32)[None]
    return drr.perspective_projection(pose.to(torch.float32), pts)[0].double().numpy() - 0.5


@pytest.fixture(scope="module")
def subject(registration_volume):
    return read(str(registration_volume[0]), orientation="AP")


@pytest.mark.parametrize(
    "rot, xyz", [([10, -5, 3], [8, 700, -12]), ([95, 10, -4], [-20, 650, 30]), ([-160, 25, 2], [5, 800, 0])]
)
def test_the_solve_finds_the_pose_diffdrr_projected_from_any_side(subject, rot, xyz):
    true = pose_from_zxy(rot, xyz)
    pixels = diffdrr_pixels(subject, true, POINTS)
    fit = solve_pose(POINTS, pixels, DETECTOR)  # no start: found from views all around
    assert mtre(true, fit.pose, POINTS) < 0.05
    assert fit.rms_px < 1e-3 and fit.errors_mm.shape == (len(POINTS),)


def test_pixel_noise_shows_in_each_pairs_error(subject):
    true = pose_from_zxy([5, 3, -2], [0, 720, 10])
    pixels = diffdrr_pixels(subject, true, POINTS)
    pixels[3] += [6.0, -4.0]  # one pair misplaced by ~7 px
    fit = solve_pose(POINTS, pixels, DETECTOR)
    assert int(np.argmax(fit.errors_px)) == 3
    assert fit.outliers.tolist() == [i == 3 for i in range(len(POINTS))]  # the one to check
    assert fit.to_json(list("abcdefgh"))["pairs"][3]["label"] == "d"


def test_the_expected_error_matches_what_click_noise_does(subject):
    """1 px of click noise: the solve's own estimate of its mTRE (the pairs' scatter through the
    Gauss-Newton covariance) agrees with the mTRE the noise really causes, over 12 draws."""
    true = pose_from_zxy([5, 3, -2], [0, 720, 10])
    clean = diffdrr_pixels(subject, true, POINTS)
    real, expected = [], []
    for seed in range(12):
        noisy = clean + np.random.default_rng(seed).normal(0.0, 1.0, clean.shape)
        fit = solve_pose(POINTS, noisy, DETECTOR, start=true)
        real.append(mtre(true, fit.pose, POINTS))
        expected.append(fit.expected_mtre_mm)
    ratio = np.sqrt(np.mean(np.square(real))) / np.median(expected)
    assert 0.5 < ratio < 2.0, (real, expected)
    few = solve_pose(POINTS[:3], clean[:3] + 0.5, DETECTOR, start=true)  # 0 degrees of freedom
    assert np.isnan(few.expected_mtre_mm) and few.to_json()["expected_mtre_mm"] is None


def test_csv_json_and_slicer_lps_files_read_to_the_same_world_points(tmp_path, registration_volume):
    ct = registration_volume[0]
    centre = volume_centre_ras(ct)
    ras = POINTS + centre  # the points in the volume file's RAS frame
    pixels = np.arange(16, dtype=float).reshape(8, 2) * 10
    lines = [
        f"p{i},{c},{r},{x},{y},{z}\n" for i, ((c, r), (x, y, z)) in enumerate(zip(pixels, ras, strict=True))
    ]
    (tmp_path / "pairs.csv").write_text("label,column,row,x,y,z\n" + "".join(lines))
    (tmp_path / "pairs.json").write_text(
        json.dumps(
            {
                "frame": "world",
                "pairs": [{"xray": list(p), "volume": list(v)} for p, v in zip(pixels, POINTS, strict=True)],
            }
        )
    )
    lps = ras * [-1, -1, 1]
    (tmp_path / "points.mrk.json").write_text(
        json.dumps(
            {
                "markups": [
                    {
                        "type": "Fiducial",
                        "coordinateSystem": "LPS",
                        "controlPoints": [{"label": f"p{i}", "position": list(p)} for i, p in enumerate(lps)],
                    }
                ]
            }
        )
    )
    order = [3, 1, 0, 2, 7, 4, 6, 5]  # the X-ray's points in another order: paired by label
    (tmp_path / "xray.csv").write_text(
        "column,row,label\n" + "".join(f"{pixels[i][0]},{pixels[i][1]},p{i}\n" for i in order)
    )
    from_csv = read_landmarks(tmp_path / "pairs.csv")
    from_json = read_landmarks(tmp_path / "pairs.json")
    from_slicer = read_landmarks(tmp_path / "xray.csv", tmp_path / "points.mrk.json")
    assert from_slicer.frame == "LPS" and from_slicer.labels[0] == "p3"
    np.testing.assert_allclose(from_csv.world(centre), POINTS, atol=1e-9)
    np.testing.assert_allclose(from_json.world(centre), POINTS, atol=1e-9)
    np.testing.assert_allclose(from_slicer.world(centre), POINTS[order], atol=1e-9)
    np.testing.assert_allclose(from_slicer.pixels, pixels[order])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("column,row,x,y,z\n1,2,3,4,5\n1,2,3,4,6\n1,2,3,4,7\n", "3 landmark pair(s)"),
        ("column,row,x,y\n1,2,3,4\n", "no column z"),
        ("column,row,x,y,z\n" + "1,2,3,4,5\n" * 3 + "1,2,nan,4,5\n", "NaN"),
        ("column,row,x,y,z\n" + "".join(f"{i},2,{i},{i},{i}\n" for i in range(5)), "one line"),
        ("column,row,x,y,z\n1,2,3,4,five\n", "lacks a number"),
    ],
)
def test_bad_landmark_files_are_named_with_the_fix(tmp_path, text, expected):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(XvrInputError, match="bad.csv") as err:
        pairs = read_landmarks(path)
        solve_pose(pairs.points, pairs.pixels, DETECTOR, where=str(path))
    assert expected in str(err.value)


def test_unpaired_labels_are_named(tmp_path):
    (tmp_path / "x.csv").write_text("column,row,label\n" + "".join(f"{i},{i},a{i}\n" for i in range(4)))
    (tmp_path / "v.csv").write_text("x,y,z,label\n" + "".join(f"{i},{i * i},{i},b{i}\n" for i in range(4)))
    with pytest.raises(XvrInputError, match="a0, a1, a2, a3 have no volume point"):
        read_landmarks(tmp_path / "x.csv", tmp_path / "v.csv")


def test_xvr_register_landmarks_starts_from_the_pairs(tmp_path, registration_volume, synthetic_cases):
    folder, truth = synthetic_cases
    case = truth["cases"]["xray_000"]
    true = pose_from_dict(case["true_pose"])
    detector = Intrinsics(**truth["intrinsics"])
    fiducials = np.asarray(truth["fiducials_mm"])[:8]
    subject = read(str(registration_volume[0]), orientation="AP")
    pixels = diffdrr_pixels(subject, true, fiducials, detector)
    pixels += np.random.default_rng(0).normal(0, 0.3, pixels.shape)  # hand-placed
    landmarks = tmp_path / "xray_000.json"
    landmarks.write_text(
        json.dumps(
            {
                "frame": "world",
                "pairs": [
                    {"label": f"f{i}", "xray": list(p), "volume": list(v)}
                    for i, (p, v) in enumerate(zip(pixels, fiducials, strict=True))
                ],
            }
        )
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_xvr.cli",
            "register",
            "landmarks",
            folder / "xray_000.dcm",
            "-v",
            registration_volume[0],
            "-o",
            out,
            "--landmarks",
            tmp_path,
            "--scales",
            "4,2",
            "--n_itrs",
            "30,20",
            "--density",
            "diffdrr",
            "--xray_mask",
            "off",
            "--verbose",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "xray_000" / "result.json").read_text())
    init = result["initialization"]
    assert init["type"] == "landmarks" and init["fits"]["xray_000"]["rms_px"] < 1.0
    assert len(init["fits"]["xray_000"]["pairs"]) == 8
    start = pose_from_dict(result["init_pose"])
    final = pose_from_dict(result["final_pose"])
    assert mtre(true, start, fiducials) < 10.0
    assert mtre(true, final, fiducials) < mtre(true, start, fiducials)
