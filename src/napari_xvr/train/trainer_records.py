"""What a training run leaves behind: checkpoints (with every rank's RNG state) and losses.csv."""

from __future__ import annotations

import csv
import datetime
import io
import random
from pathlib import Path

import torch

from ..errors import XvrInputError
from ..io.atomic import atomic_write_text, output_error
from . import distributed as dist_utils
from .checkpoint import save_checkpoint

CSV_COLUMNS = ("itr", "loss", "ncc", "geo", "rgeo", "tgeo", "dice", "haus", "lr", "kept", "time_s")


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


class TrainerRecords:
    """Checkpoints and the losses log of :class:`.loop.Trainer` (a mixin on the Trainer's attributes)."""

    def state(self, itr: int) -> dict:
        grads = {
            n: p.grad.detach().cpu().clone() for n, p in self.model.named_parameters() if p.grad is not None
        }
        return {
            "model_state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer_state_dict": self.optimizer.state_dict(),
            "scheduler_state_dict": self.scheduler.state_dict(),
            "itr": itr,
            "model_number": self.model_number,
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "config": self.config.to_dict(),
            "template_centre": self.template_centre,
            "grads": grads,
            "rng": dist_utils.gather_objects(_rng_state()),
        }

    def checkpoint(self, itr: int) -> Path | None:
        bad = next((n for n, p in self.model.named_parameters() if not torch.isfinite(p).all()), None)
        if bad is not None:  # never let a diverged network replace the last good checkpoint
            raise XvrInputError(
                f"training stopped at iteration {itr}: the weights ({bad}) are not finite; the "
                f"checkpoints in {self.outpath} hold the last good ones; lower --lr"
            )
        state = self.state(itr)  # every rank joins the RNG gather
        path = None
        if self.rank == 0:
            path = save_checkpoint(self.outpath / f"{self.model_number:04d}.pth", state)
        self.model_number += 1
        dist_utils.barrier()
        return path

    def _open_csv(self):
        """losses.csv, kept up to the resumed iteration (rewritten atomically), then appended to.

        A kill or a full disk at any moment leaves the rows up to the last flushed one; a restart
        drops the rows of iterations after its checkpoint.
        """
        path = self.outpath / "losses.csv"
        source = self.previous_log if self.previous_log is not None else path
        rows = []
        if self.start_itr > 0 and source.is_file():
            with source.open(newline="") as handle:
                rows = [
                    r
                    for r in csv.DictReader(handle)
                    if r.get("itr", "").strip().isdigit() and int(r["itr"]) < self.start_itr
                ]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, text.getvalue())
        try:
            handle = path.open("a", newline="")
        except OSError as err:
            raise output_error(path, err, atomic=False) from err
        return handle, csv.DictWriter(handle, fieldnames=CSV_COLUMNS, lineterminator="\n")

    def _log_row(self, handle, writer, row: dict) -> None:
        try:
            writer.writerow(row)
            handle.flush()
        except OSError as err:
            raise output_error(self.outpath / "losses.csv", err, atomic=False) from err  # a log
