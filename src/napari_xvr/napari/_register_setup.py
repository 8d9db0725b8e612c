"""The Register widget's job set-up: its controls read as the core's options, volume spec and
initializer, and the :class:`._register_job.RegisterJob` built from them."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from .. import defaults
from ..device import pick_device
from ..errors import XvrInputError
from ..io.xray import check_reducefn
from ..register import (
    DicomInitializer,
    PoseInitializer,
    Preprocessing,
    RegistrationOptions,
    RestartInitializer,
)
from ..register.options import DEFAULT_ITRS, Outputs, RunChecks
from ..register.volume_spec import VolumeSpec
from ..register.workflows.joint import joint_name
from ..register.workflows.one_xray import AUTO_STARTS
from ..register.workflows.pipeline import plan_outputs
from ._jobs import LayerSnapshot
from ._layer_helpers import PREDICATES, find_widget
from ._register_job import RegisterJob

INITS = (
    "DRR and pose widget",
    "DICOM header",
    "model checkpoint",
    "previous result",
    "pose in X-ray metadata",
)


class RegisterSetup:
    """The job set-up of :class:`._register_widget.RegisterWidget` (a mixin)."""

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
            outputs=Outputs(saveimg=self.saveimg.value, overwrite=self.overwrite.value),
            checks=RunChecks(
                mirror_check=self.mirror_check.value,
                retry_starts=AUTO_STARTS if self.auto_retry.value else 0,
            ),
            views=tuple(LayerSnapshot.of(v) for v in views),
            # the CLI's "given on the command line": a ticked flip, an orientation not the default
            explicit=frozenset({"reverse_x_axis"} if self.reverse_x_axis.value else set())
            | frozenset(
                {"orientation"} if self.orientation_choice.value != defaults.reg("orientation") else set()
            ),
        )
