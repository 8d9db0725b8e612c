"""The Train widget's display of a run on the main thread: progress, loss curves and the mosaic of
training and predicted DRRs, in its own place beside the other layers."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import XvrInputError
from ._jobs import Failed
from ._layer_helpers import upsert_image
from ._layers import KIND
from ._train_job import TrainProgress
from ._workers import ActivityBar, info, report_error

MOSAIC = "training DRRs (top) / predicted (bottom)"
MOSAIC_TEXT = "training DRRs: row labels"
ROW_NAMES = ("top row: DRRs at sampled poses", "bottom row: DRRs at the predicted poses")


def _free_place(viewer, exclude: tuple[str, ...]) -> tuple[float, float, float]:
    """(top, left, height) in world units of a place right of every other layer's extent
    (rows and columns: the last two world axes), as tall as they are."""
    boxes = [np.asarray(layer.extent.world)[:, -2:] for layer in viewer.layers if layer.name not in exclude]
    if not boxes:
        return 0.0, 0.0, 256.0
    lo = np.min([b[0] for b in boxes], axis=0)
    hi = np.max([b[1] for b in boxes], axis=0)
    height = float(max(hi[0] - lo[0], 1e-6))
    gap = 0.1 * height
    return float(lo[0]), float(hi[1] + gap), height


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class TrainDisplay:
    """Events of :class:`._train_widget.TrainWidget`'s run shown in the viewer (a mixin)."""

    def _show_mosaic(self, image: np.ndarray, itr: int | None) -> None:
        """The mosaic beside every other layer (never over the CT or X-ray), scaled to their
        height, with a label above it and one below it naming the rows."""
        top, left, height = _free_place(self.viewer, exclude=(MOSAIC, MOSAIC_TEXT))
        scale = height / image.shape[0]
        upsert_image(
            self.viewer,
            MOSAIC,
            image,
            colormap="gray",
            contrast_limits=(0.0, 1.0),
            scale=(scale, scale),
            translate=(top, left),
            metadata={KIND: "training", "itr": itr},
        )
        tall, wide = image.shape[0] * scale, image.shape[1] * scale
        middle = left + 0.5 * wide  # one label above the top row, one below the bottom row
        where = np.array([[top - 0.04 * tall, middle], [top + 1.04 * tall, middle]])
        if MOSAIC_TEXT in self.viewer.layers:
            self.viewer.layers[MOSAIC_TEXT].data = where
        else:
            self.viewer.add_points(
                where,
                name=MOSAIC_TEXT,
                size=0,
                face_color="transparent",
                border_width=0,
                features={"row": list(ROW_NAMES)},
                text={"string": "{row}", "color": "yellow", "size": 11, "anchor": "center"},
                metadata={KIND: "training"},
            )
        if itr is None:  # the placeholder made at the click (adding layers mid-run stalls)
            return
        if not self._shown_mosaic:  # the first images of a session: bring them into view
            self._shown_mosaic = True
            self.viewer.reset_view()

    # ---------------------------------------------------------------- events (main thread)
    def _on_event(self, event) -> None:
        from ..train import Checkpointed, TrainDone, TrainStarted

        if isinstance(event, TrainStarted):
            if self._pbar is None:
                self._pbar = ActivityBar(event.n_total_itrs, "training")
            self._pbar.total = event.n_total_itrs
            self._pbar.reach(event.start_itr)
            self._total = event.n_total_itrs
            # wandb's absence is the usual case here, not news for the status line: the log has it
            for note in event.notes:
                if note.startswith("wandb"):
                    logging.getLogger("napari_xvr").info(note)
            notes = "; ".join(n for n in event.notes if not n.startswith("wandb"))
            self.status.value = (
                f"training on {event.device} from itr {event.start_itr} "
                f"({event.n_parameters / 1e6:.1f} M parameters) {notes}"
            )
        elif isinstance(event, TrainProgress):
            self.losses.extend(zip(event.itrs, event.losses, strict=True))
            x, y = np.array(self.losses).T
            self.plot.set_lines({"loss": (x, y)})
            if self._pbar is not None:
                self._pbar.reach(event.itr + 1)
            eta = (self._total - event.itr - 1) * event.step_time_s
            self.status.value = (
                f"itr {event.itr + 1}/{self._total}  loss {event.losses[-1]:.4f}  "
                f"{event.step_time_s:.2f} s/itr  ETA {_duration(eta)}"
            )
            if event.mosaic is not None:
                self._show_mosaic(event.mosaic, event.itr)
        elif isinstance(event, Checkpointed):
            self.checkpoints.append(Path(event.path))
        elif isinstance(event, TrainDone):
            self.done = event
            how = "stopped" if event.stopped else "done"
            self.status.value = (
                f"{how} at itr {event.itr} after {_duration(event.elapsed_s)}; checkpoint {event.path}"
            )
            info(f"Train: {self.status.value}")
        elif isinstance(event, Failed):
            report_error(XvrInputError(event.message), "Train")
            self.status.value = f"failed: {event.message}"

    def _on_finished(self) -> None:
        if self._pump is not None:  # what is still queued comes first (the end of the run among it)
            self._pump.close()
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.worker = None
        self._lock(False)
