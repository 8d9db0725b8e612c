"""Dock widget 3: train a patient-specific pose regressor, with a live loss plot and DRRs.

The display of a run (progress, plot, the DRR mosaic) is in :mod:`._train_display`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.qt.threading import create_worker

import napari

from ..conventions import RENDERERS
from ..device import device_choices
from ..errors import XvrInputError
from ..geometry import PARAMETERIZATIONS
from ..register import StopToken
from ._dock import StatusLine, group, lock_options, scrolled
from ._drr_widget import FLIP_LABEL, FLIP_TOOLTIP, POSE_LABELS
from ._jobs import merge_progress
from ._layer_helpers import follow_layers, layer_combo, orientation_combo, remember
from ._plots import LivePlot
from ._tooltips import explain
from ._train_display import MOSAIC, TrainDisplay
from ._train_job import training
from ._workers import ActivityBar, EventPump, Stoppable, report_error, while_alive

RANGES = ("r1", "r2", "r3", "tx", "ty", "tz")
DRR_EVERY = 25  # the widget shows DRRs more often than the CLI's 250: they are the live view

CPU_DRR_EVERY = 10

#: timm backbones the regressor builds from offline (no weights needed) with the default
#: group norm at any square image size; pretrained weights are fetched only with "ImageNet
#: weights" ticked
MODELS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet18d",
    "resnet34d",
    "resnet50d",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "densenet121",
)


def model_choices(current: str) -> list[str]:
    """The backbones offered, the configured one first among them if it is not listed."""
    return list(MODELS) if current in MODELS else [current, *MODELS]


def on_cpu() -> bool:
    """Whether "auto" would train on the CPU (no CUDA or MPS device here)."""
    from ..device import pick_device

    return pick_device("auto").type == "cpu"


def _range_label(name: str) -> str:
    """'primary (deg)' -> 'primary range (deg)': the DRR widget's name and unit."""
    what, unit = POSE_LABELS[name].rsplit(" ", 1)
    return f"{what} range {unit}"


class TrainWidget(TrainDisplay, Stoppable, Container):
    """The options of ``xvr train`` in groups, an output folder, Start, Stop and Resume.

    A live loss plot, a layer of sampled DRRs (top) beside the DRRs of the predicted poses
    (bottom), and progress with an ETA in the activity dock and the status line.
    """

    stop_message = "stopping after this iteration (a checkpoint is written)"

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=False)
        from ..train import TrainConfig
        from ..train.recipes import cpu_recipe

        core = d = TrainConfig(volpath="", outpath="")
        self.cpu_preset = on_cpu()
        if self.cpu_preset:  # the core's CPU recipe (xvr train --recipe cpu); xvr's on a GPU
            d = cpu_recipe(core)
        self._defaults = d
        self.viewer = viewer
        self.volume = layer_combo(viewer, "volume", "volume layer")
        self.volpath = FileEdit(label="or volume file", mode="r", value="")
        self.labels_layer = layer_combo(viewer, "labels", "labels layer", optional=True)
        self.ranges = {
            name: LineEdit(
                label=_range_label(name),
                value=f"{getattr(d, name)[0]:g},{getattr(d, name)[1]:g}",
                tooltip=f"low,high: poses are drawn uniformly in this range (xvr's --{name})",
            )
            for name in RANGES
        }
        self.batch_size = SpinBox(label="batch size", value=d.batch_size, min=1, max=4096)
        self.sdd = FloatSpinBox(label="sdd (mm)", value=d.sdd, min=1, max=5000)
        self.det_height = SpinBox(label="height (px)", value=d.height, min=8, max=2048)
        self.det_width = SpinBox(
            label="width (px)",
            value=d.height,
            min=8,
            max=2048,
            enabled=False,
            tooltip="training DRRs are square: the width follows the height",
        )
        self.delx = FloatSpinBox(label="delx (mm)", value=d.delx, min=0.01, max=50, step=0.1)
        self.dely = FloatSpinBox(
            label="dely (mm)",
            value=d.delx,
            min=0.01,
            max=50,
            step=0.1,
            enabled=False,
            tooltip="training pixels are square: dely follows delx",
        )
        self.det_height.changed.connect(lambda v: setattr(self.det_width, "value", v))
        self.delx.changed.connect(lambda v: setattr(self.dely, "value", v))
        self.orientation_choice = orientation_combo(d.orientation)
        self.reverse_x_axis = CheckBox(label=FLIP_LABEL, value=d.reverse_x_axis, tooltip=FLIP_TOOLTIP)
        self.renderer = ComboBox(label="renderer", choices=RENDERERS, value=d.renderer)
        self.model_name = ComboBox(
            label="model",
            choices=model_choices(d.model_name),
            value=d.model_name,
            tooltip="the timm backbone of the pose regressor (xvr's --model_name)",
        )
        self.parameterization = ComboBox(
            label="parameterization", choices=PARAMETERIZATIONS, value=d.parameterization
        )
        self.pretrained = CheckBox(
            label="ImageNet weights",
            value=d.pretrained,
            tooltip="start from timm's ImageNet weights (downloaded once; "
            "offline they must be in the Hugging Face cache)",
        )
        self.p_augmentation = FloatSpinBox(
            label="p augmentation", value=d.p_augmentation, min=0, max=1, step=0.05
        )
        self.lr = FloatSpinBox(label="lr (Adam step)", value=d.lr, min=1e-7, max=1, step=1e-5)
        self.weight_ncc = FloatSpinBox(label="weight mNCC (unitless)", value=d.weight_ncc, min=0, max=100)
        self.weight_geo = FloatSpinBox(
            label="weight geodesic (per mm)", value=d.weight_geo, min=0, max=100, step=0.01
        )
        self.weight_dice = FloatSpinBox(label="weight Dice (unitless)", value=d.weight_dice, min=0, max=100)
        self.n_total_itrs = SpinBox(label="iterations", value=d.n_total_itrs, min=1, max=10_000_000)
        self.n_warmup_itrs = SpinBox(label="warm-up itrs", value=d.n_warmup_itrs, min=0, max=1_000_000)
        self.n_grad_accum_itrs = SpinBox(
            label="grad accumulation", value=d.n_grad_accum_itrs, min=1, max=1000
        )
        self.n_save_every_itrs = SpinBox(label="save every", value=d.n_save_every_itrs, min=1, max=1_000_000)
        self.n_drr_every_itrs = SpinBox(
            label="show DRRs every", value=CPU_DRR_EVERY if self.cpu_preset else DRR_EVERY, min=1, max=100_000
        )
        self.device = ComboBox(
            label="device",
            choices=device_choices(),
            value=d.device,
            tooltip="auto: cuda, then mps, then cpu (the CLI's --device)",
        )
        self.outpath = FileEdit(label="output folder", mode="d", value="")
        self.start_button = PushButton(text="Start")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.resume_button = PushButton(text="Resume")
        self.status = StatusLine("idle")
        self.plot = LivePlot("training loss", "loss")
        preset = Label(value=_preset_note(core) if self.cpu_preset else "")
        preset.native.setWordWrap(True)
        preset.visible = self.cpu_preset
        self.preset_note = preset
        self.body = Container(
            labels=False,
            widgets=[
                preset,
                group("Data", self.volume, self.volpath, self.labels_layer),
                group("Sampling", *self.ranges.values(), self.batch_size),
                group(
                    "Detector and renderer",
                    self.sdd,
                    self.det_height,
                    self.det_width,
                    self.delx,
                    self.dely,
                    self.orientation_choice,
                    self.reverse_x_axis,
                    self.renderer,
                ),
                group("Model", self.model_name, self.parameterization, self.pretrained, self.p_augmentation),
                group(
                    "Optimiser",
                    self.lr,
                    self.weight_ncc,
                    self.weight_geo,
                    self.weight_dice,
                    self.n_total_itrs,
                    self.n_warmup_itrs,
                    self.n_grad_accum_itrs,
                    self.n_save_every_itrs,
                ),
                group("Output", self.outpath, self.n_drr_every_itrs, self.device),
            ],
        )
        buttons = Container(
            widgets=[self.start_button, self.stop_button, self.resume_button],
            layout="horizontal",
            labels=False,
        )
        self.scroll = scrolled(self, self.body, pinned=(self.plot, buttons, self.status))
        self.start_button.changed.connect(self.start)
        self.stop_button.changed.connect(self.stop)
        self.resume_button.changed.connect(self.resume)
        self.worker = None
        self.stop_token: StopToken | None = None
        self.native.destroyed.connect(self._stop_quietly)  # closing the dock ends its run
        self.losses: list[tuple[int, float]] = []
        self.done = None
        self.checkpoints: list[Path] = []
        self._pbar = None
        self._pump: EventPump | None = None
        self._shown_mosaic = False
        follow_layers(self, viewer)
        remember(self, "train")
        from ..cli.train import train as _cli

        explain(self, _cli)  # every control says what it does

    # ---------------------------------------------------------------- config
    def _path(self, layer, edit) -> str | None:
        if layer is not None:
            path = layer.metadata.get("path")
            if not path:
                raise XvrInputError(
                    f"layer {layer.name!r} has no file path; save it as NIfTI and choose the file instead"
                )
            return path
        value = str(edit.value or "") if edit is not None else ""
        return value if value not in ("", ".") else None

    def config(self):
        """The TrainConfig the controls describe (validated by napari_xvr.train)."""
        from ..train import TrainConfig

        volpath = self._path(self.volume.value, self.volpath)
        if volpath is None:
            raise XvrInputError("choose a volume layer opened from a file, or a volume file")
        outpath = self._path(None, self.outpath)
        if outpath is None:
            raise XvrInputError("choose an output folder for the checkpoints")
        return TrainConfig(
            volpath=volpath,
            outpath=outpath,
            maskpath=self._path(self.labels_layer.value, None),
            **{name: _range(name, edit.value) for name, edit in self.ranges.items()},
            batch_size=self.batch_size.value,
            sdd=self.sdd.value,
            height=self.det_height.value,
            delx=self.delx.value,
            orientation=self.orientation_choice.value,
            reverse_x_axis=self.reverse_x_axis.value,
            renderer=self.renderer.value,
            model_name=self.model_name.value,
            parameterization=self.parameterization.value,
            pretrained=self.pretrained.value,
            p_augmentation=self.p_augmentation.value,
            lr=self.lr.value,
            weight_ncc=self.weight_ncc.value,
            weight_geo=self.weight_geo.value,
            weight_dice=self.weight_dice.value,
            n_total_itrs=self.n_total_itrs.value,
            n_warmup_itrs=self.n_warmup_itrs.value,
            n_grad_accum_itrs=self.n_grad_accum_itrs.value,
            n_save_every_itrs=self.n_save_every_itrs.value,
            n_drr_every_itrs=self.n_drr_every_itrs.value,
            n_samples=self._defaults.n_samples,  # no control: the recipe's on a CPU, else xvr's
            device=self.device.value,
            num_workers=0,
        )

    # ---------------------------------------------------------------- start / stop / resume
    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self) -> None:
        try:
            self._launch(config=self.config())
        except Exception as err:
            report_error(err, "Train")
            self.status.value = f"not started: {err}"

    def resume(self) -> None:
        """Continue the run whose checkpoints are in the output folder."""
        try:
            folder = self._path(None, self.outpath)
            if folder is None or not Path(folder).is_dir():
                raise XvrInputError("choose the output folder of the run to resume")
            self._launch(resume_from=Path(folder), overrides=self.resume_overrides())
        except Exception as err:
            report_error(err, "Resume")
            self.status.value = f"not resumed: {err}"

    def resume_overrides(self) -> dict:
        """The edited fields a resume may change (the rest comes from the checkpoint's config).

        The total iterations (extend or shorten the run, like ``xvr restart --n_total_itrs``),
        the device, and how often checkpoints are saved and DRRs shown.
        """
        return {
            "n_total_itrs": int(self.n_total_itrs.value),
            "device": str(self.device.value).strip() or None,
            "n_save_every_itrs": int(self.n_save_every_itrs.value),
            "n_drr_every_itrs": int(self.n_drr_every_itrs.value),
        }

    def _launch(self, config=None, resume_from=None, overrides=None) -> None:
        if self.running:
            return
        self.stop_token = StopToken()
        self.losses, self.done, self.checkpoints = [], None, []
        self.plot.clear()
        self.worker = create_worker(
            training, config, self.stop_token, resume_from, overrides=overrides, _start_thread=False
        )
        self._pump = EventPump(self._on_event, merge_progress)
        self.worker.yielded.connect(self._pump.push)
        self.worker.finished.connect(while_alive(self._on_finished))
        self._lock(True)
        self.status.value = "starting"
        self.worker.start()
        # what takes the main thread a few hundred ms is made now, at the click, not mid-run
        self._pbar = ActivityBar(int(self.n_total_itrs.value), "training")
        if MOSAIC not in self.viewer.layers:
            self._show_mosaic(np.zeros((2, 2), np.float32), None)

    def _lock(self, running: bool) -> None:
        """Options off while a run goes (Stop on), back as they were after."""
        lock_options(self, running, keep=(self.stop_button,))
        self.stop_button.enabled = running


def _preset_note(core) -> str:
    """What the CPU recipe changed, against the core's (xvr's) defaults in `core`."""
    from ..train.recipes import cpu_recipe

    cpu = cpu_recipe(core)
    return (
        f"No GPU found: the CPU recipe ({cpu.height} px, batch {cpu.batch_size}, "
        f"{cpu.n_total_itrs:,} iterations, renderer {cpu.renderer}: ~12 min on 2 cores); xvr's are "
        f"{core.height} px, batch {core.batch_size}, {core.n_total_itrs:,} iterations."
    )


def _range(name: str, text: str) -> tuple[float, float]:
    """'lo,hi' -> (lo, hi) with a message naming the field."""
    try:
        lo, hi = (float(v) for v in text.replace(" ", "").split(","))
    except ValueError as err:
        raise XvrInputError(f"{_range_label(name)} {text!r}: give two numbers, e.g. -30,30") from err
    return lo, hi
