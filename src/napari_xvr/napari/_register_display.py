"""The Register widget's display of a run on the main thread: the DRR overlay, the live view and
plot, and the result when it comes."""

from __future__ import annotations

from functools import partial

import numpy as np

from ..errors import XvrInputError
from ..geometry import grid_placement, pose_from_matrix, pose_to_dict
from ..register import Stage
from ..register.checks.mirror import MirrorCheck
from ..register.checks.setup_check import SetupCheck
from ..register.checks.trust import verdict_text, verdict_text_of
from ..register.workflows.one_xray import Retrying
from ._dock import lock_options
from ._jobs import Failed
from ._layer_helpers import find_widget, state_changed, upsert_image
from ._layers import KIND
from ._register_job import OVERLAY_CONTRAST, Finished, JointGeometry, Progress
from ._workers import info, report_error, warn


class RegisterDisplay:
    """Events of :class:`._register_widget.RegisterWidget`'s run shown in the viewer (a mixin)."""

    @property
    def overlay_name(self) -> str:
        return f"{self._job.xray.name} DRR overlay" if self._job else "DRR overlay"

    def _overlay_geometry(self, shape: tuple[int, int], xray=None) -> dict:
        """scale/translate that lay an (h, w) DRR over the (cropped) X-ray layer `xray`."""
        xray = xray or self.xray_layer
        intr = xray.metadata["intrinsics"]
        crop = self._job.options.crop
        spacing = np.array([intr["dely"], intr["delx"]])
        pixel, offset = grid_placement((intr["height"] - crop, intr["width"] - crop), spacing, shape)
        translate = np.asarray(xray.translate[-2:], dtype=float) + (crop // 2) * spacing + offset
        return {"scale": pixel, "translate": tuple(translate)}

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
        name = f"{xray.name} DRR overlay"  # (the registered X-ray's: overlay_name)
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
            self.status.value = f"{verdict_text_of(event.verdict)}: {event.what}"
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
        state_changed(self.viewer)  # the workflow's register, check and save steps
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
