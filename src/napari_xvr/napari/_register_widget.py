"""Dock widget 2: register an X-ray layer to a volume layer, live.

The widget's job set-up is in :mod:`._register_setup`, its registration view in
:mod:`._register_view` and the display of a run in :mod:`._register_display`.
"""

from __future__ import annotations

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    PushButton,
    Select,
    SpinBox,
)
from napari.qt.threading import create_worker

import napari

from .. import defaults
from ..device import device_choices
from ..geometry import PARAMETERIZATIONS
from ..orientation import RADIOLOGICAL_DISPLAY
from ..register import RegistrationOptions, StopToken
from ..register.options import OPTIMIZERS, XRAY_MASKS
from ..register.workflows.one_xray import AUTO_STARTS
from ..render import RENDERERS
from ._compare_panel import ComparePanel
from ._dock import StatusLine, group, lock_options, run_stop_row, scrolled
from ._drr_widget import FLIP_LABEL, FLIP_TOOLTIP
from ._jobs import merge_progress
from ._layer_helpers import follow_layers, layer_combo, orientation_combo, remember, state_changed
from ._plots import LivePlot
from ._register_display import RegisterDisplay
from ._register_job import RegisterJob, registration
from ._register_setup import INITS, RegisterSetup
from ._register_view import RegistrationView
from ._tooltips import explain
from ._view_grid import ViewGrid
from ._visibility import LayerVisibility
from ._workers import ActivityBar, Deferred, EventPump, Stoppable, report_error, while_alive


class RegisterWidget(RegisterSetup, RegistrationView, RegisterDisplay, Stoppable, Container):
    """X-ray, volume, labels, initialisation, preprocessing and optimiser options; Run and Stop.

    While it runs, a DRR overlay on the X-ray and a similarity plot update live; progress shows
    in napari's activity dock; Stop keeps the best pose so far. With an output folder set the
    result is written as the CLI writes it (``<folder>/<xray name>/result.json`` + CSV).
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=False)
        self.viewer = viewer
        d = RegistrationOptions()
        self.xray = layer_combo(viewer, "xray", "X-ray")
        self.views = Select(
            label="joint with",
            choices=self._view_choices,
            tooltip="more X-rays of the same patient position (a biplane pair, a rotated C-arm): "
            "one pose registered against every view (as xvr register --joint), each view's "
            "geometry from its DICOM header's C-arm angles and distances",
        )
        self.volume = layer_combo(viewer, "volume", "volume")
        self.labels_layer = layer_combo(viewer, "labels", "labels", optional=True)
        self.label_ids = LineEdit(label="render labels", value="", tooltip="e.g. 1,2,3; empty: all")
        self.orientation_choice = orientation_combo()
        self.init = ComboBox(label="initialisation", choices=INITS, value=INITS[0])
        self.init.changed.connect(lambda *_: state_changed(self.viewer))
        self.init_path = FileEdit(label="checkpoint / result", mode="r", value="")
        self.crop = SpinBox(label="crop (px)", min=0, max=4096, value=d.crop)
        self.subtract_background = CheckBox(
            label="subtract background", value=defaults.reg("subtract_background")
        )
        self.linearize = CheckBox(label="linearize", value=defaults.reg("linearize"))
        self.equalize = CheckBox(label="equalize", value=d.equalize)
        self.xray_mask = ComboBox(
            label="mask X-ray",
            choices=XRAY_MASKS,
            value=d.xray_mask,
            tooltip="auto: leave burned-in text, markers and collimator borders out of the similarity",
        )
        self.reducefn = LineEdit(label="reduce frames", value=defaults.reg("reducefn"))
        self.scales = LineEdit(label="scales", value=d.scales)
        self.optimizer = ComboBox(
            label="optimizer",
            choices=OPTIMIZERS,
            value=d.optimizer,
            tooltip="lm: Levenberg-Marquardt (fast); adam: xvr's optimiser",
        )
        self.n_itrs = LineEdit(label="max iterations", value=d.n_itrs)
        self.multistart = SpinBox(
            label="more starts",
            value=d.multistart,
            min=0,
            max=64,
            tooltip="also run the first scale from this many poses up to "
            f"{d.multistart_rot:g} deg / {d.multistart_xyz:g} mm off the start and go "
            "on from the best: for starts more than ~15 deg / 50 mm off",
        )
        self.auto_retry = CheckBox(
            label="retry when not ok",
            value=False,
            tooltip=f"--multistart auto: when the verdict is not ok, register again from "
            f"{AUTO_STARTS} more starts and keep the better result",
        )
        self.parameterization = ComboBox(
            label="parameterization", choices=PARAMETERIZATIONS, value=d.parameterization
        )
        self.lr_rot = FloatSpinBox(label="lr rotation (rad)", value=d.lr_rot, min=0, max=10, step=1e-3)
        self.lr_xyz = FloatSpinBox(label="lr translation (mm)", value=d.lr_xyz, min=0, max=100, step=0.1)
        self.patience = SpinBox(label="patience", value=d.patience, min=1, max=1000)
        self.threshold = FloatSpinBox(
            label="threshold (similarity)", value=d.threshold, min=0, max=1, step=1e-4
        )
        self.max_n_plateaus = SpinBox(label="max plateaus", value=d.max_n_plateaus, min=1, max=20)
        self.renderer = ComboBox(label="renderer", choices=RENDERERS, value=defaults.reg("renderer"))
        self.reverse_x_axis = CheckBox(
            label=FLIP_LABEL, value=defaults.reg("reverse_x_axis"), tooltip=FLIP_TOOLTIP
        )
        self.mirror_check = CheckBox(
            label="mirror check",
            value=defaults.reg("mirror_check"),
            tooltip="after the run, the first scale again on the X-ray flipped left-right: a "
            "warning when it matches clearly better (an X-ray of the other flip convention)",
        )
        self.device = ComboBox(
            label="device",
            choices=device_choices(),
            value=defaults.reg("device"),
            tooltip="auto (cuda, then mps, then cpu) or a device of this machine, as the CLI's --device",
        )
        self.outdir = FileEdit(label="output folder", mode="d", value="")
        self.saveimg = CheckBox(label="save images", value=False)
        self.overwrite = CheckBox(
            label="replace an existing result",
            value=False,
            tooltip="Otherwise a run whose result folder exists in the output folder is refused "
            "before it starts (as the CLI without --overwrite)",
        )
        self.view = CheckBox(
            label="registration view",
            value=True,
            tooltip="the 2D canvas shows the X-ray, its DRR overlay and orientation labels alone "
            "(other layers hidden; a joint registration: every view side by side, in napari's "
            "grid); untick to show the other layers again",
        )
        self.radiological = CheckBox(
            label="radiological display",
            value=RADIOLOGICAL_DISPLAY,
            tooltip="frontal views shown with the patient's left on the viewer's right, as PACS "
            "and 3D Slicer show them (the 2D view is mirrored when the X-ray is stored the other "
            "way); untick to show the X-ray as stored",
        )
        self.run_button = PushButton(text="Run")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.status = StatusLine("idle")
        self.plot = LivePlot("similarity", "similarity")
        self.compare = ComparePanel(viewer, self._comparison_source)
        self.body = Container(
            labels=False,
            widgets=[
                group(
                    "Inputs",
                    self.xray,
                    self.views,
                    self.volume,
                    self.labels_layer,
                    self.label_ids,
                    self.orientation_choice,
                    self.reverse_x_axis,
                ),
                group("Initialisation", self.init, self.init_path),
                group(
                    "Preprocessing",
                    self.crop,
                    self.subtract_background,
                    self.linearize,
                    self.equalize,
                    self.xray_mask,
                    self.reducefn,
                ),
                group(
                    "Optimiser",
                    self.optimizer,
                    self.scales,
                    self.n_itrs,
                    self.multistart,
                    self.auto_retry,
                    self.parameterization,
                    self.lr_rot,
                    self.lr_xyz,
                    self.patience,
                    self.threshold,
                    self.max_n_plateaus,
                    self.renderer,
                    self.device,
                ),
                group("Output", self.outdir, self.saveimg, self.overwrite, self.mirror_check),
                group("View", self.view, self.radiological, self.compare),
            ],
        )
        self.scroll = scrolled(  # the plot, Run/Stop and status stay in view at any screen size
            self,
            self.body,
            pinned=(self.plot, run_stop_row(self.run_button, self.stop_button), self.status),
        )
        self.xray.changed.connect(lambda _layer: self.views.reset_choices())
        self.xray.changed.connect(self._xray_changed)
        self.optimizer.changed.connect(self._optimizer_changed)
        self.run_button.changed.connect(self.run)
        self.stop_button.changed.connect(self.stop)
        self.view.changed.connect(self._view_changed)
        self.radiological.changed.connect(lambda *_: self._apply_display())
        self.worker = None
        self.stop_token: StopToken | None = None
        self.native.destroyed.connect(self._stop_quietly)  # closing the dock ends its run
        self.result = None
        self.last_folder = None  # the last result saved (a session keeps it)
        self.mirror = None
        self._relabel = True  # the orientation letters are due (a stage began)
        self._live_view = Deferred(self._show_live_view)  # the overlay: in its own loop pass
        self.similarities: list[tuple[int, float]] = []
        self._pbar = None
        self._pump: EventPump | None = None
        self._job: RegisterJob | None = None
        self._hidden = LayerVisibility(viewer)  # what the registration view hid or showed
        self._letters: dict | None = None  # the registered X-ray's edge letters
        self._grid = ViewGrid(viewer)  # a joint run's views side by side (grid, layer order)
        self._relatives: tuple = ()  # a joint run: each view's pose relative to the first's
        follow_layers(self, viewer)
        remember(self, "register")
        from ..cli.register import dicom as _cli

        explain(self, _cli)  # every control says what it does
        self._optimizer_changed(self.optimizer.value)

    # ---------------------------------------------------------------- run / stop
    def _xray_changed(self, layer) -> None:
        """Another X-ray: the last run's status is not about it."""
        if not self.running:
            self.status.set_tone("ok")
            self.status.value = "idle" if layer is None else f"ready: {layer.name}"

    @property
    def running(self) -> bool:
        return self.worker is not None

    def run(self) -> None:
        """Start a registration in a thread worker (returns at once)."""
        if self.running:
            return
        try:
            job = self.make_job()
        except Exception as err:
            report_error(err, "Register")
            return
        self.compare.clear()  # the last result's comparison is not this run's
        self._job = job
        self.similarities = []
        self.result = None
        state_changed(self.viewer)
        self.status.set_tone("ok")
        self.mirror = None
        self._relabel = True
        self.plot.clear()
        self.stop_token = StopToken()
        total = job.options.max_iterations()
        self._pbar = ActivityBar(total, f"registering {job.xray.name}")
        self.worker = create_worker(registration, job, self.stop_token, _start_thread=False)
        self._pump = EventPump(self._on_event, merge_progress)
        self.worker.yielded.connect(self._pump.push)
        self.worker.finished.connect(while_alive(self._on_finished))
        self.run_button.enabled, self.stop_button.enabled = False, True
        lock_options(self.body, True, keep=(self.view,))
        self.status.value = "starting: building the renderer"
        self._relatives = ()
        self.worker.start()
        self._guard_view(self._blank_overlay)
        self._guard_view(self.focus_xray)
