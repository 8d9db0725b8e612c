"""The training loop as a generator of small events (CLI progress bar, napari, scripts).

One step: sample random poses, render DRRs (views that miss the volume are discarded), augment,
regress poses, render the predicted poses, and minimise
``weight_ncc * (1 - mNCC) + weight_geo * double geodesic + weight_dice * Dice
+ weight_haus * Hausdorff`` (``--geodesic_only``: ``weight_geo * double geodesic`` alone, without
rendering the predicted poses) with Adam, warm-up + cosine learning rate, gradient accumulation
and adaptive gradient clipping.
The Trainer's set-up and checks are in :mod:`.trainer_setup`; its checkpoints and losses.csv in
:mod:`.trainer_records`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import torch
from diffdrr.data import transform_hu_to_density
from diffdrr.pose import RigidTransform

from ..device import pick_device
from ..errors import XvrInputError
from ..geometry import Intrinsics
from ..io.atomic import output_error
from ..register.engine import StopToken
from ..register.optimiser.similarity import standardize
from . import distributed as dist_utils
from .augment import XrayAugmentations
from .checkpoint import load_checkpoint
from .config import TrainConfig
from .data import VolumeSet
from .events import Checkpointed, TrainDone, TrainStarted, TrainStep
from .loss import PoseRegressionLoss, soft_masks
from .network import PoseRegressor
from .run_folder import _same_folder, check_output_folder, remove_stale_temporaries, run_files_in
from .sampler import prior_centre, random_poses
from .trainer_records import CSV_COLUMNS, TrainerRecords
from .trainer_setup import TrainerSetup, _set_rng_state
from .wandb_log import _null, _wandb

__all__ = [
    "Checkpointed",
    "StopToken",
    "TrainDone",
    "TrainStarted",
    "TrainStep",
    "Trainer",
    "run_training",
    "train",
]


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


class Trainer(TrainerSetup, TrainerRecords):
    """Everything one training run holds; :meth:`run` is the event generator."""

    def __init__(
        self, config: TrainConfig, resume: dict | None = None, resume_path=None, overwrite: bool = False
    ):
        self.config = config
        self.overwrite = overwrite
        self.notes: list[str] = []
        self.rank, self.world = dist_utils.rank(), dist_utils.world_size()
        self.device = dist_utils.local_device(pick_device(config.device))
        torch.manual_seed(config.seed + self.rank)
        random.seed(config.seed + self.rank)
        self.outpath = Path(config.outpath)
        check_output_folder(self.outpath)
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
        # every input is checked here, before the network is built and before any file is written
        config.check_geometry()
        finetune = None
        if resume is not None:
            self._check_resume(resume, resume_path)
        elif config.ckptpath is not None:
            finetune = self._check_finetune(config.ckptpath)
        if config.warp is not None:
            from .warp import read_itk_matrix

            read_itk_matrix(config.warp, config.invert)
        self.volumes = VolumeSet(
            config.volpath, config.maskpath, config.orientation, config.patch_size, config.sample_weights
        )
        shapes = self.volumes.validate()
        self._check_memory(shapes)
        if config.frame_center_ras is None:
            config.frame_center_ras = self.volumes.frame_center_ras
        self.intrinsics = Intrinsics(config.sdd, config.height, config.height, config.delx, config.delx)
        self.ranges = {k: getattr(config, k) for k in ("r1", "r2", "r3", "tx", "ty", "tz")}

        torch.manual_seed(config.seed + self.rank)  # the checks above draw nothing; be sure of it
        random.seed(config.seed + self.rank)
        self.model = PoseRegressor(
            config.model_name,
            config.parameterization,
            config.convention,
            config.pretrained,
            config.height,
            config.norm_layer,
            config.unit_conversion_factor,
        ).to(self.device)
        self._check_space()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        warmup = config.n_warmup_itrs / config.n_grad_accum_itrs
        total = config.n_total_itrs / config.n_grad_accum_itrs
        if config.disable_scheduler:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: 1.0)
        else:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda s: lr_factor(s, warmup, total)
            )
        self.start_itr, self.model_number = 0, 0
        self.template_centre = None
        self._grads = None
        self._rng = None

        if resume is not None:
            self._resume(resume, resume_path)
        elif finetune is not None:
            self._finetune(finetune, config.ckptpath)
        else:  # a fresh model predicts the centre of the sampling box until it learns better
            self.model.start_at(prior_centre(self.ranges).to(self.device))
        self.lossfn = PoseRegressionLoss(
            config.sdd, config.weight_ncc, config.weight_geo, config.weight_dice, config.weight_haus
        ).to(self.device)
        self.augment = XrayAugmentations(config.p_augmentation)
        self.autocast = self._autocast()
        self.raw: torch.nn.Module = _Raw(self.model)
        if config.use_compile:
            if self.device.type == "cuda":
                # a compiled module is a module (OptimizedModule); torch's stub says a callable
                self.raw = cast(torch.nn.Module, torch.compile(self.raw, mode="max-autotune-no-cudagraphs"))
            else:
                self.notes.append(
                    f"--use_compile ignored: compiling is only used on CUDA (device {self.device.type})"
                )
        if self.world > 1:
            self.raw = dist_utils.wrap(self.raw, self.device)
        self._drrs: dict = {}
        if self._rng:  # last, so nothing above draws from the restored streams
            try:
                _set_rng_state(self._rng)
            except (TypeError, ValueError, RuntimeError, KeyError) as err:
                raise XvrInputError(
                    f"-c {resume_path}: the checkpoint's RNG state is damaged ({err}); "
                    "restart from an earlier checkpoint"
                ) from err

    def _render(self, drr, pose: RigidTransform, masks: bool):
        kwargs: dict[str, Any] = {"mask_to_channels": True} if masks else {}
        if self.config.renderer == "trilinear":
            kwargs["n_points"] = int(self.config.n_samples)
        channels = drr(pose, **kwargs)
        img = channels.sum(dim=1, keepdim=True)
        return img, (soft_masks(channels) if masks else None)

    def step(self, itr: int) -> dict:
        cfg = self.config
        index = self.volumes.draw()
        drr, hu, warp = self._renderer(index)
        use_masks = (
            getattr(drr, "mask", None) is not None
            and not cfg.geodesic_only
            and (cfg.weight_dice > 0 or cfg.weight_haus > 0)
        )
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
                    "hold the last good ones; lower --lr, or check the volume's intensities"
                )
            loss.backward()
        if boundary:
            from timm.utils.agc import adaptive_clip_grad

            adaptive_clip_grad(self.model.parameters())
            bad = next(
                (
                    n
                    for n, p in self.model.named_parameters()
                    if p.grad is not None and not torch.isfinite(p.grad).all()
                ),
                None,
            )
            if bad is not None:
                raise XvrInputError(
                    f"training stopped at iteration {itr}: the gradient of {bad} is not finite; the "
                    f"weights were not updated with it and the checkpoints in {self.outpath} hold the "
                    "last good ones; lower --lr, or check the volume's intensities"
                )
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)

        def kept_mean(t):
            return float((t.detach() * keep).sum() / keep.sum().clamp(min=1))

        return {
            "loss": float(loss.detach()) * cfg.n_grad_accum_itrs,
            "ncc": kept_mean(terms.ncc),
            "geo": kept_mean(terms.geo),
            "rgeo": kept_mean(terms.rgeo),
            "tgeo": kept_mean(terms.tgeo),
            "dice": kept_mean(terms.dice),
            "haus": kept_mean(terms.haus),
            "lr": float(self.scheduler.get_last_lr()[0]),
            "kept": float(keep.mean()),
            "images": (img, pred_img),
        }

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
        yield TrainStarted(
            self.start_itr, cfg.n_total_itrs, self.outpath, str(self.device), n_params, tuple(self.notes)
        )
        t0, last, itr, stopped = time.perf_counter(), None, self.start_itr, False
        self.model.train()
        try:
            while itr < cfg.n_total_itrs:
                if itr % cfg.n_save_every_itrs == 0 and (itr > self.start_itr or itr == 0):
                    last = self.checkpoint(itr)
                    if lead:
                        assert last is not None  # rank 0 writes the checkpoints
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
                    itr=itr,
                    **log,
                    drr=img[:4, 0].detach().float().cpu().numpy() if show else None,
                    pred=pred[:4, 0].detach().float().cpu().numpy() if show and pred is not None else None,
                )
                itr += 1
            last = self.checkpoint(itr)
            if lead:
                assert last is not None
                yield Checkpointed(itr, last)
        finally:
            if handle is not None:
                handle.close()
            if wandb_run is not None:
                wandb_run.finish()
        yield TrainDone(itr, last, time.perf_counter() - t0, stopped)


def train(config: TrainConfig, stop: StopToken | None = None, overwrite: bool = False) -> Iterator:
    """Event generator for a new run (or a finetune when ``config.ckptpath`` is set).

    An output folder that already holds a run is refused unless `overwrite` (then its
    checkpoints and losses.csv are removed when the run starts).
    """
    return Trainer(config, overwrite=overwrite).run(stop)


def restart(
    ckptpath, stop: StopToken | None = None, outpath=None, overwrite: bool = False, **overrides
) -> Iterator:
    """Event generator continuing the run a checkpoint (file, or folder of them) came from.

    The run goes on in the checkpoint's own folder (never where its stored config points: a
    copied run must not write into the original), or in `outpath`, which must not hold another
    run unless `overwrite`.
    """
    from .checkpoint import latest_checkpoint

    total = overrides.get("n_total_itrs")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 1):
        raise XvrInputError(f"--n_total_itrs {total!r}: must be a whole number >= 1")
    path = Path(ckptpath)
    if path.is_dir():
        path = latest_checkpoint(path)
    ckpt = load_checkpoint(path)
    data = dict(ckpt["config"])
    data.update({k: v for k, v in overrides.items() if v is not None})
    data["outpath"] = str(outpath if outpath is not None else path.parent)
    config = TrainConfig.from_dict(data, source=str(path))
    try:
        config.check_geometry()
    except XvrInputError as err:
        raise XvrInputError(
            f"{path}: the training config it holds is not valid ({err}); the file is damaged or was edited"
        ) from err
    return Trainer(config, resume=ckpt, resume_path=path, overwrite=overwrite).run(stop)


def run_training(events: Iterator) -> TrainDone | None:
    """Consume a training generator to the end (scripts); returns the final event (None: the
    events held no :class:`TrainDone`)."""
    done = None
    for event in events:
        if isinstance(event, TrainDone):
            done = event
    return done
