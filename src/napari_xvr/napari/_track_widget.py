"""Dock widget 5: track a fluoroscopy sequence (a frames x rows x cols X-ray layer), live.

The sequence's frame axis is napari's slider; the tracked DRR overlay is a layer of the same
frames, so it follows the slider. Run starts at the frame the slider shows: after a tracked
frame it resumes from that frame's state (the same poses as an uninterrupted run), otherwise
that frame is registered in full first. Stop ends after the current iteration, keeping every
frame done.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, LineEdit, PushButton
from napari.qt.threading import create_worker

import napari

from .. import defaults
from ..defaults import PREDICTS
from ..errors import XvrInputError
from ..geometry import pose_from_matrix, pose_to_dict
from ..orientation import RADIOLOGICAL_DISPLAY
from ..register import DicomInitializer, PoseInitializer, RegistrationOptions, StopToken
from ..register.checks.trust import verdict_text
from ..register.volume_spec import VolumeSpec
from ..register.workflows.track import FrameStarted, TrackDone, TrackOptions, TrackState
from ._dock import StatusLine, group, lock_options, run_stop_row, scrolled
from ._drr_widget import FLIP_LABEL, FLIP_TOOLTIP
from ._jobs import Failed, LayerSnapshot
from ._layer_helpers import (
    find_widget,
    fit_2d,
    follow_layers,
    layer_combo,
    orientation_combo,
    remember,
    upsert_image,
)
from ._layers import KIND
from ._letters import letters_for, mirror_view, show_letters
from ._plots import LivePlot
from ._register_job import OVERLAY_CONTRAST
from ._tooltips import explain
from ._track_job import FrameProgress, Tracked, TrackJob, tracking
from ._workers import EventPump, Stoppable, info, report_error, while_alive

INITS = ("DICOM header", "DRR and pose widget")
TRACK_KEY = "track"  # the sequence layer's metadata: {"poses": {frame: 4x4}, "states": {...}}


class TrackWidget(Stoppable, Container):
    """Track an X-ray sequence against a volume: frame by frame from the previous pose."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=False)
        self.viewer = viewer
        first = RegistrationOptions()
        frame = TrackOptions()
        self.sequence = layer_combo(viewer, "xray", "sequence")
        self.volume = layer_combo(viewer, "volume", "volume")
        self.orientation_choice = orientation_combo()
        self.reverse_x_axis = CheckBox(
            label=FLIP_LABEL, value=defaults.reg("reverse_x_axis"), tooltip=FLIP_TOOLTIP
        )
        self.init = ComboBox(label="first frame from", choices=INITS, value=INITS[0])
        self.scales = LineEdit(label="first frame scales", value=first.scales)
        self.track_scales = LineEdit(
            label="frame scales",
            value=frame.scales,
            tooltip="each later frame: scales from its previous pose",
        )
        self.track_itrs = LineEdit(label="frame iterations", value=frame.n_itrs)
        self.predict = ComboBox(
            label="start each frame",
            choices=PREDICTS,
            value=frame.predict,
            tooltip="none: the previous frame's pose; velocity: its motion continued",
        )
        self.radiological = CheckBox(
            label="radiological display",
            value=RADIOLOGICAL_DISPLAY,
            tooltip="frontal views shown with the patient's left on the viewer's right, as PACS "
            "and 3D Slicer show them (the 2D view is mirrored when the frames are stored the other "
            "way); untick to show the frames as stored",
        )
        self._letters: dict | None = None
        self.run_button = PushButton(text="Track from the slider's frame")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.status = StatusLine("idle: Run starts at the frame the slider shows")
        self.plot = LivePlot("similarity per frame", "similarity", xlabel="frame")
        self.body = Container(
            labels=False,
            widgets=[
                group("Inputs", self.sequence, self.volume, self.orientation_choice, self.reverse_x_axis),
                group("Tracking", self.init, self.scales, self.track_scales, self.track_itrs, self.predict),
                group("View", self.radiological),
            ],
        )
        self.scroll = scrolled(  # the plot, Run/Stop and status stay in view at any screen size
            self,
            self.body,
            pinned=(self.plot, run_stop_row(self.run_button, self.stop_button), self.status),
        )
        self.run_button.changed.connect(self.run)
        self.stop_button.changed.connect(self.stop)
        self.radiological.changed.connect(
            lambda on: self._letters is not None and mirror_view(self.viewer, self._letters, on)
        )
        self.worker = None
        self.stop_token: StopToken | None = None
        self.native.destroyed.connect(self._stop_quietly)
        self._job: TrackJob | None = None
        self._pump: EventPump | None = None
        self.last_done: TrackDone | None = None
        follow_layers(self, viewer)
        remember(self, "track")
        from ..cli.track import dicom as _cli

        explain(self, _cli)  # every control says what it does

    # ---------------------------------------------------------------- the job
    @property
    def running(self) -> bool:
        return self.worker is not None

    def overlay_name(self, sequence=None) -> str:
        return f"{(sequence or self.sequence.value).name} tracked DRR"

    def start_frame(self, sequence) -> int:
        """The frame the slider shows on the sequence's frame axis (0 for a single X-ray)."""
        if sequence.ndim < 3:
            return 0
        index = sequence.world_to_data(self.viewer.dims.point[-sequence.ndim :])[0]
        return int(np.clip(round(float(index)), 0, sequence.data.shape[0] - 1))

    def show_frame(self, sequence, index: int) -> None:
        """Move the frame slider to frame `index` of `sequence`, and name that slider."""
        if sequence.ndim < 3:
            return
        axis = self.viewer.dims.ndim - sequence.ndim
        world = sequence.data_to_world([index] + [0] * (sequence.ndim - 1))
        self.viewer.dims.set_point(axis, float(world[0]))
        labels = list(self.viewer.dims.axis_labels)
        if sequence.ndim == 4 and labels[axis] != "frame":
            labels[axis] = "frame"
            self.viewer.dims.axis_labels = labels

    def make_job(self) -> TrackJob:
        sequence, volume = self.sequence.value, self.volume.value
        if sequence is None:
            raise XvrInputError("choose a sequence layer (open a multi-frame X-ray DICOM)")
        if volume is None:
            raise XvrInputError("choose a volume layer (open a CT/MR with napari-xvr)")
        start = self.start_frame(sequence)
        states = sequence.metadata.get(TRACK_KEY, {}).get("states", {})
        state = None
        if start > 0 and str(start - 1) in states:
            state = TrackState.from_json(states[str(start - 1)])
        track_options = TrackOptions(
            self.track_scales.value, self.track_itrs.value, self.predict.value, start_frame=start
        )
        spec = VolumeSpec(
            volume=volume.metadata.get("path") or volume.name,
            orientation=self.orientation_choice.value,
            reverse_x_axis=self.reverse_x_axis.value,
        )
        return TrackJob(
            LayerSnapshot.of(sequence),
            LayerSnapshot.of(volume),
            spec,
            None if state is not None else self._initializer(spec),
            RegistrationOptions(scales=self.scales.value, drr_every=0),
            track_options,
            state,
        )

    def _initializer(self, spec: VolumeSpec):
        if self.init.value == INITS[0]:
            return partial(DicomInitializer, spec.orientation)
        drr_widget = find_widget("drr", self.viewer)
        if drr_widget is None:
            raise XvrInputError(
                "open the 'DRR and pose' widget to set the first frame's pose, or start from the DICOM header"
            )
        return partial(PoseInitializer, drr_widget.pose_matrix())

    def run(self) -> None:
        """Track in a thread worker from the slider's frame (returns at once)."""
        if self.running:
            return
        try:
            job = self.make_job()
            self._blank_overlay(job)
        except Exception as err:
            report_error(err, "Track")
            return
        self._job, self.last_done = job, None
        self.show_frame(self.viewer.layers[job.sequence.name], job.track_options.start_frame)
        self.stop_token = StopToken()
        self.worker = create_worker(tracking, job, self.stop_token, _start_thread=False)
        self._pump = EventPump(self._on_event)
        self.worker.yielded.connect(self._pump.push)
        self.worker.finished.connect(while_alive(self._on_finished))
        self.run_button.enabled, self.stop_button.enabled = False, True
        lock_options(self.body, True)
        resumed = "resuming from the state of frame " if job.state else "registering frame "
        self.status.value = f"{resumed}{job.track_options.start_frame - bool(job.state)}"
        self.worker.start()

    def _blank_overlay(self, job: TrackJob) -> None:
        """The overlay layer, one plane per frame, made at the click (adding a layer mid-run
        stalls the main thread); planes already tracked keep their DRR."""
        sequence = self.viewer.layers[job.sequence.name]
        data = np.asarray(sequence.data)
        flat = data.ndim == 2  # one X-ray: one frame
        shape = (1, *data.shape) if flat else data.shape
        name = self.overlay_name(sequence)
        if name in self.viewer.layers and self.viewer.layers[name].data.shape == shape:
            return
        upsert_image(
            self.viewer,
            name,
            np.zeros(shape, np.float32),
            scale=(1.0, *sequence.scale) if flat else tuple(sequence.scale),
            translate=(0.0, *sequence.translate) if flat else tuple(sequence.translate),
            colormap="magenta",
            blending="additive",
            opacity=0.8,
            contrast_limits=OVERLAY_CONTRAST,
            interpolation2d="linear",
            metadata={KIND: "overlay"},
        )
        if sequence.colormap.name == "gray":  # green X-ray + magenta DRR: aligned parts grey
            sequence.colormap = "green"
        volume = self._layer(job.volume.name)
        if volume is not None and self.viewer.dims.ndisplay == 2:
            volume.visible = False  # its slice would cover the sequence in the 2D canvas
        sequence.visible = True
        if self.viewer.dims.ndisplay == 2:
            fit_2d(self.viewer, sequence)

    def _layer(self, name: str):
        return self.viewer.layers[name] if name in self.viewer.layers else None  # noqa: SIM401

    # ---------------------------------------------------------------- events (main thread)
    def _on_event(self, event) -> None:
        if isinstance(event, FrameProgress):
            self.status.value = f"{self.status.value.split(':')[0]}: sim {event.similarity:.4f}"
        elif isinstance(event, Tracked):
            self._on_tracked(event)
        elif isinstance(event, TrackDone):
            self.last_done = event
            more = "" if event.next_frame is None else f"; Run resumes at frame {event.next_frame}"
            how = "stopped" if event.stopped else "done"
            line = f"{how}: {len(event.results)} frame(s), {event.seconds:.1f} s"
            smoothed = event.smoothed
            self.status.value = (
                line + ("" if smoothed is None else f"; smoothed: {smoothed.summary(short=True)}") + more
            )
            self._record_smoothed(smoothed)
            info(
                f"Track: {line}{more}"
                + ("" if smoothed is None else f"; smoothed poses: {smoothed.summary()}")
            )
        elif isinstance(event, Failed):
            report_error(XvrInputError(event.message), "Track")
            self.status.value = f"failed: {event.message}"
        elif isinstance(event, FrameStarted):
            self.status.value = f"frame {event.index + 1}/{event.total}"

    def _record_smoothed(self, smoothed) -> None:
        """The run's smoothed poses in the sequence layer's track record (``smoothed``)."""
        sequence = self._layer(self._job.sequence.name) if self._job is not None else None
        if smoothed is None or sequence is None:
            return
        record = sequence.metadata.setdefault(TRACK_KEY, {"poses": {}, "states": {}})
        record.setdefault("smoothed", {}).update(
            {
                str(f): pose_to_dict(pose_from_matrix(p))
                for f, p in zip(smoothed.frames, smoothed.poses, strict=True)
            }
        )

    def _on_tracked(self, event: Tracked) -> None:
        """A frame's overlay plane, pose and state; the slider follows the tracking."""
        sequence = self._layer(self._job.sequence.name)
        name = self.overlay_name(sequence) if sequence is not None else None
        if sequence is None or name not in self.viewer.layers:
            return
        overlay = self.viewer.layers[name]
        if event.result.stopped:
            return  # a frame cut short keeps no pose: Run resumes at it
        plane = event.drr
        if plane.shape == overlay.data.shape[-2:]:
            overlay.data[event.index] = plane  # (a frame's one plane, as its 2D image)
            overlay.refresh()
        record = sequence.metadata.setdefault(TRACK_KEY, {"poses": {}, "states": {}})
        record["poses"][str(event.index)] = pose_to_dict(pose_from_matrix(event.result.pose))
        record["states"][str(event.index)] = event.state.to_json()
        record.setdefault("verdicts", {})[str(event.index)] = event.result.verdict
        record.setdefault("similarity", {})[str(event.index)] = float(event.result.similarity)
        frames = sorted(int(k) for k in record["poses"])
        sims = [record["similarity"][str(k)] for k in frames]
        self.plot.set_lines({"similarity": (np.array(frames), np.array(sims))})
        spec = self._job.spec  # the patient's directions at the frame's edges, as Register's
        letters = letters_for(sequence, event.result.pose, spec.orientation, spec.reverse_x_axis)
        count = len(self.viewer.layers)
        show_letters(self.viewer, sequence, letters)
        self._letters = letters
        mirror_view(self.viewer, letters, self.radiological.value)
        if len(self.viewer.layers) > count:  # the new letters layer became the active one
            self.viewer.layers.selection.active = sequence
        self.show_frame(sequence, event.index)
        self.status.value = (
            f"frame {event.index}: sim {event.result.similarity:.4f}, "
            f"{event.seconds:.2f} s [{verdict_text(event.result)}]"
        )

    def _on_finished(self) -> None:
        if self._pump is not None:
            self._pump.close()
        self.worker = None
        lock_options(self.body, False)
        self.run_button.enabled, self.stop_button.enabled = True, False
