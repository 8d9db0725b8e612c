"""Dock widget 2: register an X-ray layer to a volume layer, live."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
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
from ..device import device_choices, pick_device
from ..errors import XvrInputError
from ..geometry import PARAMETERIZATIONS, pose_from_matrix, pose_to_dict
from ..io.xray import check_reducefn
from ..orientation import edge_labels, radiological_mirror
from ..register import (
    DicomInitializer,
    PoseInitializer,
    Preprocessing,
    RegistrationOptions,
    RestartInitializer,
    Stage,
    StopToken,
)
from ..register.joint import joint_name
from ..register.mirror import MirrorCheck
from ..register.one_xray import AUTO_STARTS, Retrying
from ..register.options import DEFAULT_ITRS, OPTIMIZERS, XRAY_MASKS
from ..register.pipeline import plan_outputs
from ..register.setup_check import SetupCheck
from ..register.trust import verdict_text, verdict_text_of
from ..register.volume_spec import VolumeSpec
from ..render import RENDERERS
from ._compare_panel import ComparePanel
from ._dock import StatusLine, group, lock_options, run_stop_row, scrolled
from ._drr_widget import FLIP_LABEL, FLIP_TOOLTIP
from ._jobs import Failed, LayerSnapshot, merge_progress
from ._layer_helpers import (
    PREDICATES,
    find_widget,
    fit_2d,
    follow_layers,
    layer_combo,
    orientation_combo,
    remember,
    upsert_image,
)
from ._layers import KIND
from ._plots import LivePlot
from ._register_job import (
    OVERLAY_CONTRAST,
    Finished,
    JointGeometry,
    Progress,
    RegisterJob,
    registration,
)
from ._tooltips import explain
from ._view_grid import ViewGrid
from ._visibility import LayerVisibility
from ._workers import ActivityBar, Deferred, EventPump, Stoppable, info, report_error, warn, while_alive
from .api import intrinsics_of

FLAT = ("xray", "overlay", "drr", "replay")  # layers in detector mm, even with frames

INITS = (
    "DRR and pose widget",
    "DICOM header",
    "model checkpoint",
    "previous result",
    "pose in X-ray metadata",
)


class RegisterWidget(Stoppable, Container):
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
            value=True,
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
                self.plot,
            ],
        )
        self.scroll = scrolled(
            self, self.body, pinned=(run_stop_row(self.run_button, self.stop_button), self.status)
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

    # ---------------------------------------------------------------- inputs
    def _view_choices(self, _widget=None) -> list:
        """The X-ray layers besides the one registered (it is not its own joint view)."""
        test = PREDICATES["xray"]
        chosen = self.xray.value
        return [(layer.name, layer) for layer in self.viewer.layers if test(layer) and layer is not chosen]

    def _optimizer_changed(self, name: str) -> None:
        """Swap in the optimiser's iteration caps unless the user typed their own."""
        if self.n_itrs.value.strip() in ("", *DEFAULT_ITRS.values()):
            self.n_itrs.value = DEFAULT_ITRS[name]
        adam = name == "adam"
        for widget in (self.lr_rot, self.lr_xyz, self.patience, self.threshold, self.max_n_plateaus):
            widget.enabled = adam

    def _options(self) -> tuple[RegistrationOptions, Preprocessing]:
        """The controls as the core's option objects (their checks are the CLI's)."""
        options = RegistrationOptions(
            scales=self.scales.value,
            n_itrs=self.n_itrs.value,
            optimizer=self.optimizer.value,
            multistart=self.multistart.value,
            parameterization=self.parameterization.value,
            lr_rot=self.lr_rot.value,
            lr_xyz=self.lr_xyz.value,
            patience=self.patience.value,
            threshold=self.threshold.value,
            max_n_plateaus=self.max_n_plateaus.value,
            equalize=self.equalize.value,
            crop=self.crop.value,
            xray_mask=self.xray_mask.value,
            drr_every=5,
        )
        reducefn = check_reducefn(self.reducefn.value.strip() or None)
        prep = Preprocessing(self.subtract_background.value, self.linearize.value, reducefn)
        return options, prep

    def _spec(self, volume, device: str) -> VolumeSpec:
        labels = self.labels_layer.value
        return VolumeSpec(
            volume=volume.metadata.get("path") or volume.name,
            mask=None if labels is None else (labels.metadata.get("path") or labels.name),
            labels=self.label_ids.value.strip() or None,
            orientation=self.orientation_choice.value,
            renderer=self.renderer.value,
            reverse_x_axis=self.reverse_x_axis.value,
            device=device,
        )

    def _initializer(
        self, xray_layer, spec: VolumeSpec, options: RegistrationOptions, prep: Preprocessing
    ) -> Callable[[], object]:
        """The core initializer the chosen initialisation stands for, made in the worker."""
        choice = self.init.value
        if choice == INITS[0]:
            drr_widget = find_widget("drr", self.viewer)
            if drr_widget is None:
                raise XvrInputError(
                    "open the 'DRR and pose' widget to set the initial pose, or choose another initialisation"
                )
            drr_widget.remember_pose("manual")  # the start the user set stays one Undo away
            return partial(PoseInitializer, drr_widget.pose_matrix())
        if choice == INITS[1]:
            return partial(DicomInitializer, spec.orientation)
        if choice == INITS[4]:
            pose = xray_layer.metadata.get("pose") or xray_layer.metadata.get("init_pose")
            if not pose:
                raise XvrInputError(f"layer {xray_layer.name!r} carries no 'pose' in its metadata")
            return partial(PoseInitializer, np.asarray(pose["matrix"]))
        path = str(self.init_path.value or "")
        if not path or path == ".":  # a missing file is named by the core's initializer
            raise XvrInputError(f"initialisation '{choice}': choose the file in 'checkpoint / result'")
        path = Path(path).expanduser()
        if choice == INITS[3]:
            return partial(RestartInitializer, path)
        from ..train.model_init import ModelInitializer

        volume = Path(spec.volume)
        return partial(
            ModelInitializer,
            path,
            volume=volume if volume.exists() else None,
            crop=options.crop,
            subtract_background=prep.subtract_background,
            linearize=prep.linearize,
            # unticked: the renderer follows the checkpoint, as the CLI without the flag
            reverse_x_axis=True if spec.reverse_x_axis else None,
            device=spec.device,
        )

    def make_job(self) -> RegisterJob:
        """Snapshot the inputs (main thread) into a job the worker can run."""
        xray, volume = self.xray.value, self.volume.value
        if xray is None:
            raise XvrInputError("choose an X-ray layer (open a DICOM X-ray with napari-xvr)")
        if volume is None:
            raise XvrInputError("choose a volume layer (open a CT/MR with napari-xvr)")
        options, prep = self._options()
        device = self.device.value.strip() or defaults.reg("device")
        pick_device(device)  # a device that is not here is refused before the run
        spec = self._spec(volume, device)
        target = None
        outdir = self.outdir.line_edit.value.strip()  # what the user sees: "" means do not save
        views = [v for v in self.views.value if v is not xray]
        if outdir not in ("", "."):  # decided before any work, by the CLI's rule
            name = joint_name([Path(xray.name)] * (1 + len(views))) if views else xray.name
            target = plan_outputs(
                [Path(name)],
                Path(outdir).expanduser(),
                self.overwrite.value,
                how_to_replace="tick 'replace an existing result'",
            )[0]
        return RegisterJob(
            xray=LayerSnapshot.of(xray),
            volume=LayerSnapshot.of(volume),
            labels=LayerSnapshot.of(self.labels_layer.value),
            spec=spec,
            make_initializer=self._initializer(xray, spec, options, prep),
            options=options,
            preprocessing=prep,
            target=target,
            saveimg=self.saveimg.value,
            mirror_check=self.mirror_check.value,
            retry_starts=AUTO_STARTS if self.auto_retry.value else 0,
            views=tuple(LayerSnapshot.of(v) for v in views),
            # the CLI's "given on the command line": a ticked flip, an orientation not the default
            explicit=frozenset({"reverse_x_axis"} if self.reverse_x_axis.value else set())
            | frozenset(
                {"orientation"} if self.orientation_choice.value != defaults.reg("orientation") else set()
            ),
        )

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

    def _guard_view(self, show: Callable[[], None]) -> None:
        """The view is a nicety: its errors are reported, never let into a run."""
        try:
            show()
        except Exception as err:
            report_error(err, "Register (view)")

    def focus_xray(self, fit: bool = True) -> None:
        """The registration view: the X-ray, its overlay and orientation labels alone in the 2D
        canvas (fitted to it); a joint run: every view so, side by side in napari's grid. The
        layers it hides get their visibility back, and the grid and layer order theirs, when
        "registration view" is unticked."""
        xray = self.xray_layer if self._job else self.xray.value
        if xray is None or self.viewer.dims.ndisplay != 2:
            return
        views = self.view_layers if self._job else []
        joint = self.view.value and bool(views)
        if not joint:
            self._grid.give_back()  # a single view: one canvas, the user's grid and layer order
        if self.view.value:
            self._hidden.hide_all_but(
                [layer.name for cell in self._view_groups() for layer in cell]
                if joint
                else [xray.name, f"{xray.name} DRR overlay", f"{xray.name} orientation"]
            )
        if joint:
            self._show_views()
        xray.visible = True
        if self.view.value:
            for layer in self._view_layers_shown():
                layer.visible = True
        for layer in (xray, *views):  # single view: the others shown when the user picks them
            if layer.colormap.name == "gray":  # green X-ray + magenta DRR: aligned parts turn grey
                layer.colormap = "green"
        if joint:
            self._grid.show(self._view_groups(), fit=fit)
        elif fit:
            fit_2d(self.viewer, xray)

    def _show_views(self) -> None:
        """Every view's layers shown (those that were hidden: hidden again at the untick)."""
        for cell in self._view_groups():
            self._hidden.show(cell)

    def _view_groups(self) -> list[list]:
        """Each view's X-ray, DRR overlay and orientation layers (those in the viewer), the
        registered X-ray's first."""
        groups = []
        for xray in (self.xray_layer, *self.view_layers):
            if xray is not None:
                names = (xray.name, f"{xray.name} DRR overlay", f"{xray.name} orientation")
                groups.append([self.viewer.layers[n] for n in names if n in self.viewer.layers])
        return groups

    def _view_layers_shown(self) -> list:
        """The registered X-ray's own layers: it, its DRR overlay and its letters."""
        xray = self.xray_layer if self._job else None
        if xray is None:
            return []
        names = (xray.name, f"{xray.name} DRR overlay", f"{xray.name} orientation")
        return [self.viewer.layers[n] for n in names if n in self.viewer.layers]

    def _keep_layout(self) -> None:
        """A joint view's layers still in their cells (a layer made again lands on top)."""
        if self._grid.active and self.view.value and self.viewer.canvas.grid.enabled:
            self._guard_view(partial(self._grid.show, self._view_groups(), fit=False))

    def _view_changed(self, on: bool) -> None:
        if on:
            self._guard_view(self.focus_xray)
            return
        self._guard_view(self._grid.give_back)
        self._apply_display()  # as stored, outside the registration view
        self._hidden.give_back()
        # the overlay and letters are in detector mm: over a CT slice (one is shown again) they
        # are a pink wash; with only 2D layers shown they stay as the user had them
        xray = self.xray_layer if self._job else None
        if any(
            layer.visible and layer.ndim == 3 and layer.metadata.get(KIND) not in FLAT
            for layer in self.viewer.layers
        ):
            for layer in self._view_layers_shown():
                if xray is not None and layer.name != xray.name:  # (proxies: compare names)
                    layer.visible = False

    def _apply_display(self, letters: dict | None = None) -> None:
        """The 2D view mirrored left-right when 'radiological display' is on and the registered
        X-ray is a frontal view with the patient's left on its left (core
        :func:`~napari_xvr.orientation.radiological_mirror`); as stored otherwise."""
        letters = self._letters if letters is None else letters
        mirror = bool(
            self.radiological.value and self.view.value and letters and radiological_mirror(letters)
        )
        camera = self.viewer.scene.camera
        wanted = ("down", "left" if mirror else "right")
        if tuple(str(getattr(v, "value", v)) for v in camera.orientation2d) != wanted:
            camera.orientation2d = wanted

    def _show_orientation(self, matrix) -> None:
        """Patient-direction letters at the X-ray's edges for the DRR at pose `matrix` (None:
        the layer without letters yet, made at the click); a joint run: at every view's."""
        xray = self.xray_layer
        if xray is None:
            return
        count = len(self.viewer.layers)
        self._show_letters(xray, matrix)
        if self.view_layers:
            self._guard_view(partial(self._show_view_letters, matrix))
        if len(self.viewer.layers) > count:  # a new layer became the active one: the X-ray again
            self.viewer.layers.selection.active = xray

    def _show_view_letters(self, matrix) -> None:
        """The other views' letters, each for its own pose (``pose @ relative``)."""
        names = [v.name for v in self._job.views]
        for name, relative in zip(names, self._relatives[1:] or [None] * len(names), strict=True):
            if name in self.viewer.layers:
                pose = (
                    None if matrix is None or relative is None else np.asarray(matrix) @ np.asarray(relative)
                )
                self._show_letters(self.viewer.layers[name], pose)

    def _show_letters(self, xray, matrix) -> None:
        """The letters layer ``<xray> orientation`` for pose `matrix` (None: blank)."""
        spec = self._job.spec
        letters = (
            dict.fromkeys(("left", "right", "top", "bottom"), "")
            if matrix is None
            else edge_labels(
                pose_from_matrix(matrix), intrinsics_of(xray), spec.orientation, spec.reverse_x_axis
            )
        )
        (r0, c0), (r1, c1) = np.asarray(xray.extent.world)[:, -2:]
        inset_r, inset_c = 0.04 * (r1 - r0), 0.04 * (c1 - c0)
        rm, cm = 0.5 * (r0 + r1), 0.5 * (c0 + c1)
        where = {
            "left": (rm, c0 + inset_c),
            "right": (rm, c1 - inset_c),
            "top": (r0 + inset_r, cm),
            "bottom": (r1 - inset_r, cm),
        }
        points = np.array([where[edge] for edge in where], dtype=float)
        features = {"label": [letters[edge] for edge in where]}
        if xray is self.xray_layer and any(letters.values()):  # (blank at the click)
            self._letters = letters
            self._apply_display(letters)
        name = f"{xray.name} orientation"
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            if np.array_equal(layer.data, points) and list(layer.features["label"]) == features["label"]:
                return  # unchanged: a points layer's refresh costs the main thread ~20 ms
            layer.data, layer.features = points, features
            layer.text.refresh(layer.features)
            return
        self.viewer.add_points(
            points,
            name=name,
            features=features,
            size=0,
            face_color="transparent",
            border_width=0,
            opacity=1.0,
            text={"string": "{label}", "color": "yellow", "size": 14, "anchor": "center"},
            metadata={KIND: "orientation"},
        )

    # ---------------------------------------------------------------- events (main thread)
    @property
    def overlay_name(self) -> str:
        return f"{self._job.xray.name} DRR overlay" if self._job else "DRR overlay"

    def _overlay_geometry(self, shape: tuple[int, int], xray=None) -> dict:
        """scale/translate that lay an (h, w) DRR over the (cropped) X-ray layer `xray`."""
        xray = xray or self.xray_layer
        intr = xray.metadata["intrinsics"]
        crop = self._job.options.crop
        height, width = intr["height"] - crop, intr["width"] - crop
        s_row = intr["dely"] * height / shape[0]
        s_col = intr["delx"] * width / shape[1]
        base = np.asarray(xray.translate[-2:], dtype=float)
        translate = base + np.array(
            [
                (crop // 2) * intr["dely"] + 0.5 * (s_row - intr["dely"]),
                (crop // 2) * intr["delx"] + 0.5 * (s_col - intr["delx"]),
            ]
        )
        return {"scale": (s_row, s_col), "translate": tuple(translate)}

    def _comparison_source(self):
        """(the X-ray's pixels the overlay covers, the overlay layer, its name), or None."""
        if self._job is None or self.result is None or self.overlay_name not in self.viewer.layers:
            return None
        xray = self.xray_layer
        if xray is None:
            return None
        crop = self._job.options.crop
        image = np.asarray(xray.data)
        if crop:
            h, w = image.shape[-2] - crop, image.shape[-1] - crop
            image = image[..., crop // 2 : crop // 2 + h, crop // 2 : crop // 2 + w]
        if image.ndim != 2:
            return None
        return image, self.viewer.layers[self.overlay_name], self.overlay_name

    @property
    def xray_layer(self):
        name = self._job.xray.name
        return self.viewer.layers[name] if name in self.viewer.layers else None  # noqa: SIM401

    def _blank_overlay(self) -> None:
        """Make the overlay layer now (empty), so the run's first DRR only updates its data:
        adding a layer takes a few hundred ms of the main thread."""
        xray = self.xray_layer
        if xray is None or self.overlay_name in self.viewer.layers:
            return
        crop = self._job.options.crop
        shape = (xray.metadata["intrinsics"]["height"] - crop, xray.metadata["intrinsics"]["width"] - crop)
        self._show_overlay(np.zeros(shape, np.float32), shape)
        for view in self.view_layers:
            intr = view.metadata["intrinsics"]
            blank = (intr["height"] - crop, intr["width"] - crop)
            self._show_overlay(np.zeros(blank, np.float32), blank, xray=view)
        self._show_orientation(None)

    @property
    def view_layers(self) -> list:
        """The other views' X-ray layers of a joint run (those still in the viewer)."""
        names = [v.name for v in self._job.views] if self._job else []
        return [self.viewer.layers[n] for n in names if n in self.viewer.layers]

    def _show_overlay(self, image: np.ndarray, shape: tuple[int, int], meta: dict | None = None, xray=None):
        """The DRR `image` over the X-ray layer `xray` (default: the registered one)."""
        xray = xray or self.xray_layer
        if xray is None:
            return
        name = self.overlay_name if xray is self.xray_layer else f"{xray.name} DRR overlay"
        kwargs = {
            **self._overlay_geometry(shape, xray),
            "colormap": "magenta",
            "blending": "additive",
            "interpolation2d": "linear",  # coarse stages: smooth, not blocky
            "opacity": 0.8,
            "contrast_limits": OVERLAY_CONTRAST,
            "metadata": {KIND: "overlay", **(meta or {})},
        }
        upsert_image(self.viewer, name, image, **kwargs)

    def _on_event(self, event) -> None:
        if isinstance(event, Stage):
            self._guard_view(partial(self.focus_xray, fit=event.index == 1))
            self.plot.mark(self.similarities[-1][0] + 1 if self.similarities else 0, f"1/{event.scale:g}")
            self._relabel = True
            starts = f", from {event.n_starts} starts" if event.n_starts > 1 else ""
            self.status.value = (
                f"stage {event.index}/{event.n_stages}: 1/{event.scale:g} "
                f"({event.height} x {event.width} px{starts})"
            )
        elif isinstance(event, Progress):
            if self.result is not None:
                return  # a late progress event must not replace the final overlay and status
            self.similarities.extend(zip(event.itrs, event.similarities, strict=True))
            x, y = np.array(self.similarities).T
            self.plot.set_lines({"similarity": (x, y)})
            if event.drr is not None or self._relabel:
                self._live_view.set(event)
            r = event.params
            self.status.value = (
                f"stage {event.stage}/{event.n_stages} itr {event.total_itr}: "
                f"sim {event.similarities[-1]:.4f}  rot ({r[0]:.1f}, {r[1]:.1f}, "
                f"{r[2]:.1f})  xyz ({r[3]:.1f}, {r[4]:.1f}, {r[5]:.1f})"
            )
            if self._pbar is not None:
                self._pbar.reach(event.total_itr + 1)
        elif isinstance(event, Retrying):
            self.status.value = f"{verdict_text_of(event.verdict)}: retrying from {event.starts} starts"
        elif isinstance(event, MirrorCheck):
            self.mirror = event
            if event.warns:
                warn(f"Register: {event.message(self._job.xray.name)}")
        elif isinstance(event, SetupCheck):
            if event.warns:
                warn(f"Register: {event.message(self._job.xray.name)}")
        elif isinstance(event, JointGeometry):
            self._relatives = event.relatives
        elif isinstance(event, Finished):
            self._on_result(event)
        elif isinstance(event, Failed):
            report_error(XvrInputError(event.message), "Register")
            self.status.value = f"failed: {event.message}"

    def _show_live_view(self, event: Progress) -> None:
        """The latest live DRR on the X-ray (and, at a stage's start, the orientation letters)."""
        if self.result is not None:
            return  # the final overlay is shown: a live one must not replace it
        if event.drr is not None:
            self._show_overlay(event.drr, event.stage_shape)
            for view, image in zip(self.view_layers, event.view_drrs[1:], strict=False):
                self._show_overlay(image, image.shape, xray=view)
        if self._relabel:
            self._relabel = False
            self._show_orientation(event.matrix)
        self._keep_layout()

    def _on_result(self, event: Finished) -> None:
        result = event.result
        self.result = result
        self._live_view.cancel()
        meta = {
            "pose": pose_to_dict(pose_from_matrix(result.pose)),
            "result": result.to_json(),
            "trajectory": list(result.trajectory),
        }
        if event.folder is not None:
            meta["result_path"] = str(event.folder)
            self.last_folder = event.folder
        xray = self.xray_layer
        if xray is not None:
            xray.metadata.update(meta)
            if event.final_overlay is not None:
                self._show_overlay(event.final_overlay, event.final_overlay.shape, meta)
        for k, (view, image) in enumerate(
            zip(self.view_layers, event.view_overlays[1:], strict=False), start=1
        ):
            single = result.view_result(k)
            view_meta = {"pose": pose_to_dict(pose_from_matrix(single.pose)), "result": single.to_json()}
            view.metadata.update(view_meta)
            self._show_overlay(image, image.shape, view_meta, xray=view)
        drr_widget = find_widget("drr", self.viewer)
        if drr_widget is not None:
            drr_widget.set_pose_matrix(result.pose, "registration")  # Undo: the pose before
        self._show_orientation(result.pose)
        self._keep_layout()
        how = "stopped early" if result.stopped else "done"
        where = f"; saved to {event.folder}" if event.folder else ""
        # a stopped run's similarity is its best at the scale it stopped in, which scores on its
        # own resolution: below the plot's peak from the coarser scale is no loss
        scale = self.plot.markers[-1][1] if result.stopped and self.plot.markers else ""
        at = f" at scale {scale} (scales are not comparable)" if scale else ""
        self.status.value = (
            f"{how} [{verdict_text(result)}]: {result.iterations} iterations in "
            f"{result.runtime_s:.1f} s, similarity {result.similarity:.4f}{at}"
            f"{where}"
        )
        self.status.set_tone((result.verdict or {}).get("status", "ok"))
        if self.mirror is not None and self.mirror.mirrored_better:
            self.status.value = f"check the flip: {self.mirror.message()}; {self.status.value}"
        self.compare.refresh()
        info(f"Register: {self.status.value}")

    def _on_finished(self) -> None:
        if self._pump is not None:  # what is still queued comes first (the result among it)
            self._pump.close()
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.worker = None
        lock_options(self.body, False)
        self.run_button.enabled, self.stop_button.enabled = True, False
