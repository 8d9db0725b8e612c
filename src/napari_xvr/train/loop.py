"""The training loop as a generator of small events (CLI progress bar, napari, scripts).

One step: sample random poses, render DRRs (views that miss the volume are discarded), augment,
regress poses, render the predicted poses, and minimise
``weight_ncc * (1 - mNCC) + weight_geo * double geodesic + weight_dice * Dice
+ weight_haus * Hausdorff`` (``--geodesic_only``: ``weight_geo * double geodesic`` alone, without
rendering the predicted poses) with Adam, warm-up + cosine learning rate, gradient accumulation
and adaptive gradient clipping.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import math
import os
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffdrr.data import transform_hu_to_density
from diffdrr.pose import RigidTransform

from ..device import pick_device
from ..errors import XvrInputError
from ..geometry import Intrinsics
from ..io.atomic import atomic_write_text, output_error
from ..register.engine import StopToken
from ..register.similarity import standardize
from . import distributed as dist_utils
from .augment import XrayAugmentations
from .checkpoint import is_ours, load_checkpoint, model_spec, save_checkpoint
from .config import TrainConfig
from .data import VolumeSet
from .loss import PoseRegressionLoss, soft_masks
from .network import PoseRegressor
from .sampler import prior_centre, random_poses

__all__ = ["Checkpointed", "StopToken", "TrainDone", "TrainStarted", "TrainStep", "Trainer",
           "run_training", "train"]

CSV_COLUMNS = ("itr", "loss", "ncc", "geo", "rgeo", "tgeo", "dice", "haus", "lr", "kept", "time_s")


@dataclass(frozen=True)
class TrainStarted:
    start_itr: int
    n_total_itrs: int
    outpath: Path
    device: str
    n_parameters: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainStep:
    """One iteration; `drr`/`pred` (up to 4 images, (N, H, W)) every ``n_drr_every_itrs``
    (`pred` is None with ``geodesic_only``: no DRRs of the predicted poses are rendered)."""

    itr: int
    loss: float
    ncc: float
    geo: float
    rgeo: float
    tgeo: float
    dice: float
    haus: float
    lr: float
    kept: float
    time_s: float
    drr: np.ndarray | None = None
    pred: np.ndarray | None = None


@dataclass(frozen=True)
class Checkpointed:
    itr: int  # the iteration a restart resumes at
    path: Path


@dataclass(frozen=True)
class TrainDone:
    itr: int
    path: Path | None  # the last checkpoint
    elapsed_s: float
    stopped: bool


def lr_factor(step: int, warmup: float, total: float) -> float:
    """Linear warm-up to 1, then cosine decay to 0 (in optimiser steps)."""
    if warmup > 0 and step < warmup:
        return min(1.0, (step + 1) / warmup)  # a warm-up shorter than one step never exceeds --lr
    progress = (step - warmup) / max(1.0, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))


class _Raw(torch.nn.Module):
    """Tensors-only forward for DistributedDataParallel."""

    def __init__(self, model: PoseRegressor):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.parameters_of(x)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_tuplify(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(value):
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value


class Trainer:
    """Everything one training run holds; :meth:`run` is the event generator."""

    def __init__(self, config: TrainConfig, resume: dict | None = None, resume_path=None,
                 overwrite: bool = False):
        self.config = config
        self.overwrite = overwrite
        self.notes: list[str] = []
        self.rank, self.world = dist_utils.rank(), dist_utils.world_size()
        self.device = dist_utils.local_device(pick_device(config.device))
        torch.manual_seed(config.seed + self.rank)
        random.seed(config.seed + self.rank)
        self.outpath = Path(config.outpath)
        if self.outpath.exists() and not self.outpath.is_dir():
            raise XvrInputError(f"-o {self.outpath}: is a file; give a folder for checkpoints")
        self.previous_log = None if resume_path is None else Path(resume_path).parent / "losses.csv"
        continuing = resume_path is not None and _same_folder(Path(resume_path).parent, self.outpath)
        run_files = [] if continuing else run_files_in(self.outpath)
        if run_files and not overwrite:
            shown = ", ".join(p.name for p in run_files[:3]) + (" ..." if len(run_files) > 3 else "")
            raise XvrInputError(
                f"-o {self.outpath}: already holds a training run ({shown}); continue it with "
                f"`xvr restart -c {self.outpath}`, pass --overwrite to start again there, or "
                "choose another -o"
            )
        self._replaced = run_files
        self.volumes = VolumeSet(config.volpath, config.maskpath, config.orientation,
                                 config.patch_size, config.sample_weights)
        if config.frame_center_ras is None:
            config.frame_center_ras = self.volumes.frame_center_ras
        self.intrinsics = Intrinsics(config.sdd, config.height, config.height, config.delx, config.delx)
        self.ranges = {k: getattr(config, k) for k in ("r1", "r2", "r3", "tx", "ty", "tz")}

        self.model = PoseRegressor(config.model_name, config.parameterization, config.convention,
                                   config.pretrained, config.height, config.norm_layer,
                                   config.unit_conversion_factor).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        warmup = config.n_warmup_itrs / config.n_grad_accum_itrs
        total = config.n_total_itrs / config.n_grad_accum_itrs
        if config.disable_scheduler:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: 1.0)
        else:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda s: lr_factor(s, warmup, total))
        self.start_itr, self.model_number = 0, 0
        self.template_centre = None
        self._grads = None
        self._rng = None

        if resume is not None:
            self._resume(resume, resume_path)
        elif config.ckptpath is not None:
            self._finetune(config.ckptpath)
        else:  # a fresh model predicts the centre of the sampling box until it learns better
            self.model.start_at(prior_centre(self.ranges).to(self.device))
        self.lossfn = PoseRegressionLoss(config.sdd, config.weight_ncc, config.weight_geo,
                                         config.weight_dice, config.weight_haus).to(self.device)
        self.augment = XrayAugmentations(config.p_augmentation)
        self.autocast = self._autocast()
        self.raw = _Raw(self.model)
        if config.use_compile:
            if self.device.type == "cuda":
                self.raw = torch.compile(self.raw, mode="max-autotune-no-cudagraphs")
            else:
                self.notes.append(f"--use_compile ignored: compiling is only used on CUDA (device "
                                  f"{self.device.type})")
        if self.world > 1:
            self.raw = dist_utils.wrap(self.raw, self.device)
        self._drrs: dict = {}
        if self._rng:  # last, so nothing above draws from the restored streams
            _set_rng_state(self._rng)

    # ----------------------------------------------------------------- setup helpers
    def _autocast(self):
        if not self.config.use_bf16:
            return None
        if self.device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        self.notes.append(f"--use_bf16 ignored: bf16 autocast is only used on CUDA GPUs that support "
                          f"it (device {self.device.type})")
        return None

    def _load_weights(self, state: dict, source) -> None:
        try:
            self.model.load_state_dict(state)
        except RuntimeError as err:
            raise XvrInputError(
                f"-c {source}: its weights do not fit --model_name {self.config.model_name} with "
                f"--parameterization {self.config.parameterization} ({str(err).splitlines()[0]})"
            ) from err

    def _finetune(self, path) -> None:
        ckpt = load_checkpoint(path)
        spec = model_spec(ckpt["config"], path)
        self.template_centre = spec["frame_center_ras"]
        self._load_weights(ckpt["model_state_dict"], path)
        if self.config.warp is None:
            self.config.frame_center_ras = self.template_centre or self.config.frame_center_ras
        if self.config.reuse_optimizer:
            if "optimizer_state_dict" not in ckpt or "scheduler_state_dict" not in ckpt:
                raise XvrInputError(f"-c {path}: --reuse_optimizer needs optimizer and scheduler states")
            self.optimizer.load_state_dict(ckpt["optimizer_state_dict"])
            self.scheduler.load_state_dict(ckpt["scheduler_state_dict"])
            self.start_itr = int(ckpt.get("itr", 0))
            self.model_number = int(ckpt.get("model_number", 0)) + 1
        self.notes.append(f"finetuning from {path}" + (" (optimizer reused)" if self.config.reuse_optimizer
                                                      else ""))

    def _resume(self, ckpt: dict, path) -> None:
        if not is_ours(ckpt):
            raise XvrInputError(
                f"-c {path}: not a napari-xvr training checkpoint (no RNG/progress state); "
                "use `xvr train -c` with --reuse_optimizer to continue from it instead"
            )
        self._load_weights(ckpt["model_state_dict"], path)
        self.optimizer.load_state_dict(ckpt["optimizer_state_dict"])
        self.scheduler.load_state_dict(ckpt["scheduler_state_dict"])
        self.start_itr = int(ckpt["itr"])
        self.model_number = int(ckpt.get("model_number", 0)) + 1
        self.template_centre = ckpt.get("template_centre")
        self._grads = ckpt.get("grads") or None
        states = ckpt.get("rng") or []
        if self.rank < len(states) and len(states) == self.world:
            self._rng = states[self.rank]
        else:
            torch.manual_seed(self.config.seed + self.rank + 7919 * self.start_itr)
            random.seed(self.config.seed + self.rank + 7919 * self.start_itr)
            self._rng = {}
            self.notes.append("RNG states do not match this world size; reseeded")
        if self._grads:
            for name, p in self.model.named_parameters():
                if name in self._grads:
                    p.grad = self._grads[name].to(self.device).clone()

    def _renderer(self, index: int):
        """(DRR, HU volume, template->volume warp or None) for volume `index`."""
        from ..render import make_drr

        if index in self._drrs and self.volumes.single:
            return self._drrs[index]
        subject = self.volumes.subject(index)
        drr = make_drr(subject, self.intrinsics, self.config.renderer, self.config.reverse_x_axis,
                       self.config.voxel_shift, device=self.device)
        hu = subject.volume.data.squeeze().to(self.device, torch.float32)
        warp = None
        if self.config.warp is not None:
            from .warp import reframe

            patient_centre = self.volumes.last_centre_ras
            warp = reframe(self.config.warp, self.template_centre, patient_centre,
                           self.config.invert).to(self.device)
        entry = (drr, hu, warp)
        if self.volumes.single:
            self._drrs[index] = entry
        return entry

    # ----------------------------------------------------------------- the step
    def _render(self, drr, pose: RigidTransform, masks: bool):
        kwargs = {"mask_to_channels": True} if masks else {}
        if self.config.renderer == "trilinear":
            kwargs["n_points"] = int(self.config.n_samples)
        channels = drr(pose, **kwargs)
        img = channels.sum(dim=1, keepdim=True)
        return img, (soft_masks(channels) if masks else None)

    def step(self, itr: int) -> dict:
        cfg = self.config
        index = self.volumes.draw()
        drr, hu, warp = self._renderer(index)
        use_masks = (getattr(drr, "mask", None) is not None and not cfg.geodesic_only
                     and (cfg.weight_dice > 0 or cfg.weight_haus > 0))
        pose = random_poses(self.ranges, cfg.batch_size, device=self.device)
        multiplier = 1.0
        if torch.rand(()) < cfg.p_augmentation:
            multiplier = float(1.0 + 9.0 * torch.rand(()))
        drr.density = transform_hu_to_density(hu, multiplier).to(self.device)

        with torch.no_grad():
            img, mask = self._render(drr, pose, use_masks)
            if use_masks:
                cover = (mask[:, 1:] > 0.5).any(dim=1).flatten(1).float().mean(1)
                keep = (cover > cfg.mask_threshold).float()
            else:
                keep = ((img > 1e-3).flatten(1).float().mean(1) > cfg.img_threshold).float()
            x = standardize(self.augment(img))

        boundary = (itr + 1) % cfg.n_grad_accum_itrs == 0 or itr + 1 == cfg.n_total_itrs
        sync = dist_utils.no_sync(self.raw) if (self.world > 1 and not boundary) else _null()
        with sync:
            if self.autocast is not None:
                with self.autocast:
                    rot, xyz = self.raw(x)
            else:
                rot, xyz = self.raw(x)
            pred_pose = self.model.to_pose(rot.float(), xyz.float())
            if warp is not None:
                pred_pose = pred_pose.compose(warp)
            if cfg.geodesic_only:
                pred_img = None
                terms = self.lossfn.geodesic_only(pose, pred_pose)
            else:
                pred_img, pred_mask = self._render(drr, pred_pose, use_masks)
                terms = self.lossfn(img, pose, pred_img, pred_pose, mask, pred_mask)
            loss = (terms.loss * keep).sum() / (keep.sum().clamp(min=1) * cfg.n_grad_accum_itrs)
            if not torch.isfinite(loss):
                raise XvrInputError(
                    f"training stopped at iteration {itr}: the loss is {float(loss)} (not finite); "
                    f"the weights were not updated with it and the checkpoints in {self.outpath} "
                    "hold the last good ones; lower --lr, or check the volume's intensities")
            loss.backward()
        if boundary:
            from timm.utils.agc import adaptive_clip_grad

            adaptive_clip_grad(self.model.parameters())
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)

        def kept_mean(t):
            return float((t.detach() * keep).sum() / keep.sum().clamp(min=1))

        return {
            "loss": float(loss.detach()) * cfg.n_grad_accum_itrs,
            "ncc": kept_mean(terms.ncc), "geo": kept_mean(terms.geo), "rgeo": kept_mean(terms.rgeo),
            "tgeo": kept_mean(terms.tgeo), "dice": kept_mean(terms.dice), "haus": kept_mean(terms.haus),
            "lr": float(self.scheduler.get_last_lr()[0]), "kept": float(keep.mean()),
            "images": (img, pred_img),
        }

    # ----------------------------------------------------------------- checkpoints / logs
    def state(self, itr: int) -> dict:
        grads = {n: p.grad.detach().cpu().clone() for n, p in self.model.named_parameters()
                 if p.grad is not None}
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
                rows = [r for r in csv.DictReader(handle)
                        if r.get("itr", "").strip().isdigit() and int(r["itr"]) < self.start_itr]
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

    # ----------------------------------------------------------------- the generator
    def run(self, stop: StopToken | None = None) -> Iterator:
        cfg, stop = self.config, stop or StopToken()
        try:
            self.outpath.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise output_error(self.outpath, err, atomic=False) from err
        if self.rank == 0:
            remove_stale_temporaries(self.outpath)
            for old in self._replaced:  # --overwrite: the user asked to start this folder again
                old.unlink(missing_ok=True)
        lead = self.rank == 0
        handle, writer = self._open_csv() if lead else (None, None)
        wandb_run = _wandb(cfg, self.notes) if lead else None
        n_params = sum(p.numel() for p in self.model.parameters())
        yield TrainStarted(self.start_itr, cfg.n_total_itrs, self.outpath, str(self.device), n_params,
                           tuple(self.notes))
        t0, last, itr, stopped = time.perf_counter(), None, self.start_itr, False
        self.model.train()
        try:
            while itr < cfg.n_total_itrs:
                if itr % cfg.n_save_every_itrs == 0 and (itr > self.start_itr or itr == 0):
                    last = self.checkpoint(itr)
                    if lead:
                        yield Checkpointed(itr, last)
                if dist_utils.any_rank(stop.stopped):
                    stopped = True
                    break
                tic = time.perf_counter()
                log = self.step(itr)
                img, pred = log.pop("images")
                log["time_s"] = time.perf_counter() - tic
                if lead:
                    self._log_row(handle, writer, {"itr": itr, **{k: log[k] for k in CSV_COLUMNS[1:]}})
                    if wandb_run is not None:
                        wandb_run.log({**log, "itr": itr})
                show = cfg.n_drr_every_itrs > 0 and itr % cfg.n_drr_every_itrs == 0
                yield TrainStep(
                    itr=itr, **log,
                    drr=img[:4, 0].detach().float().cpu().numpy() if show else None,
                    pred=pred[:4, 0].detach().float().cpu().numpy() if show and pred is not None
                    else None,
                )
                itr += 1
            last = self.checkpoint(itr)
            if lead:
                yield Checkpointed(itr, last)
        finally:
            if handle is not None:
                handle.close()
            if wandb_run is not None:
                wandb_run.finish()
        yield TrainDone(itr, last, time.perf_counter() - t0, stopped)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _wandb(cfg: TrainConfig, notes: list[str]):
    """A wandb run when wandb is installed and configured (WANDB_API_KEY or a login), else None."""
    try:
        import wandb
    except ImportError:
        if cfg.name or cfg.id or cfg.group:
            notes.append("wandb is not installed: --name/--id/--group ignored; losses go to losses.csv")
        return None
    configured = bool(os.environ.get("WANDB_API_KEY")) or os.environ.get("WANDB_MODE") in ("offline",
                                                                                          "disabled")
    if not configured:
        try:
            configured = bool(wandb.api.api_key)
        except Exception:
            configured = False
    if not configured:
        notes.append("wandb is not configured (no WANDB_API_KEY/login): losses go to losses.csv only")
        return None
    return wandb.init(project=cfg.project, group=cfg.group, name=cfg.name, id=cfg.id, resume="allow",
                      config=cfg.to_dict(), dir=str(cfg.outpath))


def train(config: TrainConfig, stop: StopToken | None = None, overwrite: bool = False) -> Iterator:
    """Event generator for a new run (or a finetune when ``config.ckptpath`` is set).

    An output folder that already holds a run is refused unless `overwrite` (then its
    checkpoints and losses.csv are removed when the run starts).
    """
    return Trainer(config, overwrite=overwrite).run(stop)


def restart(ckptpath, stop: StopToken | None = None, outpath=None, overwrite: bool = False,
            **overrides) -> Iterator:
    """Event generator continuing the run a checkpoint (file, or folder of them) came from.

    The run goes on in the checkpoint's own folder (never where its stored config points: a
    copied run must not write into the original), or in `outpath`, which must not hold another
    run unless `overwrite`.
    """
    from .checkpoint import latest_checkpoint

    path = Path(ckptpath)
    if path.is_dir():
        path = latest_checkpoint(path)
    ckpt = load_checkpoint(path)
    data = dict(ckpt["config"])
    data.update({k: v for k, v in overrides.items() if v is not None})
    data["outpath"] = str(outpath if outpath is not None else path.parent)
    config = TrainConfig.from_dict(data, source=str(path))
    return Trainer(config, resume=ckpt, resume_path=path, overwrite=overwrite).run(stop)


RUN_FILE = re.compile(r"^\d{4,}\.pth$")


def run_files_in(folder: Path) -> list[Path]:
    """The files of a training run in `folder`: numbered checkpoints and losses.csv."""
    if not folder.is_dir():
        return []
    found = sorted(p for p in folder.iterdir() if RUN_FILE.match(p.name))
    return found + ([folder / "losses.csv"] if (folder / "losses.csv").is_file() else [])


def remove_stale_temporaries(folder: Path) -> None:
    """Temporary files that a killed atomic write left behind (`.<name>.<random>.tmp`)."""
    for tmp in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if tmp.is_file():
                tmp.unlink()


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def run_training(events: Iterator) -> TrainDone:
    """Consume a training generator to the end (scripts); returns the final event."""
    done = None
    for event in events:
        if isinstance(event, TrainDone):
            done = event
    return done
