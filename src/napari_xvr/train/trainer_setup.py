"""The Trainer's set-up: refusing a run that cannot start (a checkpoint to finetune or resume,
memory, disk space), loading a checkpoint's state, and the renderer of each volume."""

from __future__ import annotations

import random
import shutil

import torch

from ..errors import XvrInputError, XvrOutputError
from ..memory import device_memory
from .checkpoint import check_resumable, is_ours, load_checkpoint, model_spec
from .run_folder import _existing_ancestor, _one_line

#: memory one ray sample of a training step takes (float32 points, values and autograd's copies;
#: measured ~18 bytes on the CPU, so a batch needing more than the device's memory cannot run)
BYTES_PER_SAMPLE = 16


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_tuplify(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(value):
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value


class TrainerSetup:
    """Set-up steps of :class:`.loop.Trainer` (a mixin: it works on the Trainer's attributes)."""

    def _autocast(self):
        if not self.config.use_bf16:
            return None
        if self.device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        self.notes.append(
            f"--use_bf16 ignored: bf16 autocast is only used on CUDA GPUs that support "
            f"it (device {self.device.type})"
        )
        return None

    def _load_weights(self, state: dict, source) -> None:
        try:
            self.model.load_state_dict(state)
        except (RuntimeError, TypeError, ValueError) as err:
            raise XvrInputError(
                f"-c {source}: its weights do not fit --model_name {self.config.model_name} with "
                f"--parameterization {self.config.parameterization} ({str(err).splitlines()[0]})"
            ) from err

    def _check_finetune(self, path) -> dict:
        """The checkpoint to finetune, refused unless its network is the one configured."""
        cfg = self.config
        ckpt = load_checkpoint(path)
        spec = model_spec(ckpt["config"], path)
        ours = {
            "model_name": cfg.model_name,
            "parameterization": cfg.parameterization,
            "norm_layer": cfg.norm_layer,
            "unit_conversion_factor": cfg.unit_conversion_factor,
        }
        if cfg.parameterization == "euler_angles":
            ours["convention"] = cfg.convention
        differ = [
            k
            for k, v in ours.items()
            if (float(spec[k]) != float(v) if k == "unit_conversion_factor" else spec[k] != v)
        ]
        if differ:
            theirs = " ".join(f"--{k} {spec[k]}" for k in differ)
            given = " ".join(f"--{k} {ours[k]}" for k in differ)
            raise XvrInputError(
                f"-c {path}: the checkpoint's network has {theirs}, not {given}; pass {theirs} to finetune it"
            )
        for key in ("height", "sdd", "delx"):
            if float(spec[key]) != float(getattr(cfg, key)):
                self.notes.append(
                    f"finetuning a model trained with --{key} {spec[key]:g} at --{key} {getattr(cfg, key):g}"
                )
        if cfg.reuse_optimizer:
            if not isinstance(ckpt.get("optimizer_state_dict"), dict) or not isinstance(
                ckpt.get("scheduler_state_dict"), dict
            ):
                raise XvrInputError(f"-c {path}: --reuse_optimizer needs optimizer and scheduler states")
            itr, number = ckpt.get("itr", 0), ckpt.get("model_number", 0)
            for name, value in (("itr", itr), ("model_number", number)):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise XvrInputError(
                        f"-c {path}: the checkpoint's {name}={value!r} is not a count; "
                        "the file is damaged (finetune without --reuse_optimizer)"
                    )
            if itr >= cfg.n_total_itrs:
                raise XvrInputError(
                    f"-c {path}: with --reuse_optimizer training goes on from iteration "
                    f"{itr}, which --n_total_itrs {cfg.n_total_itrs} has reached; pass "
                    f"--n_total_itrs above {itr}"
                )
        return ckpt

    def _finetune(self, ckpt: dict, path) -> None:
        spec = model_spec(ckpt["config"], path)
        self.template_centre = spec["frame_center_ras"]
        self._load_weights(ckpt["model_state_dict"], path)
        if self.config.warp is None:
            self.config.frame_center_ras = self.template_centre or self.config.frame_center_ras
        if self.config.reuse_optimizer:
            try:
                self.optimizer.load_state_dict(ckpt["optimizer_state_dict"])
                self.scheduler.load_state_dict(ckpt["scheduler_state_dict"])
            except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as err:
                raise XvrInputError(
                    f"-c {path}: its optimizer state does not fit this network "
                    f"({_one_line(err)}); finetune without --reuse_optimizer"
                ) from err
            self.start_itr = int(ckpt.get("itr", 0))
            self.model_number = int(ckpt.get("model_number", 0)) + 1
        self.notes.append(
            f"finetuning from {path}" + (" (optimizer reused)" if self.config.reuse_optimizer else "")
        )

    def _check_resume(self, ckpt: dict, path) -> None:
        if not is_ours(ckpt):
            raise XvrInputError(
                f"-c {path}: not a napari-xvr training checkpoint (no RNG/progress state); "
                "use `xvr train -c` with --reuse_optimizer to continue from it instead"
            )
        check_resumable(ckpt, path)
        itr, total = ckpt["itr"], self.config.n_total_itrs
        if itr >= total:
            raise XvrInputError(
                f"-c {path}: the run is finished (this checkpoint is at iteration {itr} of "
                f"--n_total_itrs {total}); pass --n_total_itrs above {itr} to train it further"
            )

    def _resume(self, ckpt: dict, path) -> None:
        self._load_weights(ckpt["model_state_dict"], path)
        try:
            self.optimizer.load_state_dict(ckpt["optimizer_state_dict"])
            self.scheduler.load_state_dict(ckpt["scheduler_state_dict"])
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as err:
            raise XvrInputError(
                f"-c {path}: the checkpoint's optimizer state does not fit its network "
                f"({_one_line(err)}); the file is damaged: restart from an earlier "
                "checkpoint"
            ) from err
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
            params = dict(self.model.named_parameters())
            for name, grad in self._grads.items():
                if name not in params or tuple(grad.shape) != tuple(params[name].shape):
                    raise XvrInputError(
                        f"-c {path}: the checkpoint's pending gradient {name} does not "
                        "fit its network; the file is damaged: restart from an "
                        "earlier checkpoint"
                    )
                params[name].grad = grad.to(self.device, params[name].dtype).clone()

    def _check_memory(self, shapes) -> None:
        """Refuse a batch whose DRRs cannot fit in memory (measured: ~18 bytes per ray sample)."""
        cfg = self.config
        depth = max(max(shape) for shape in shapes)
        samples = cfg.n_samples if cfg.renderer == "trilinear" else depth
        need = cfg.batch_size * cfg.height * cfg.height * samples * BYTES_PER_SAMPLE
        total = device_memory(self.device)
        if total and need > total:
            raise XvrInputError(
                f"--batch_size {cfg.batch_size} with --height {cfg.height} and {samples} samples per "
                f"ray needs at least {need / 2**30:.1f} GiB for one batch of DRRs, more than the "
                f"{total / 2**30:.1f} GiB of {self.device}; lower --batch_size, --height or --n_samples"
            )

    def _check_space(self) -> None:
        """Refuse an output where not even one checkpoint fits (a file-size limit, a full disk)."""
        import resource

        # weights, Adam's two moments, pending gradients, and the zip container's padding
        n_bytes = sum(p.numel() * p.element_size() for p in self.model.parameters())
        n_bytes += sum(b.numel() * b.element_size() for b in self.model.buffers())
        need = 4 * n_bytes + 2**16
        try:
            soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        except (ValueError, OSError):
            soft = resource.RLIM_INFINITY
        if soft != resource.RLIM_INFINITY and soft < need:
            raise XvrOutputError(
                f"could not write {self.outpath / '0000.pth'}: a checkpoint takes about "
                f"{need / 2**20:.1f} MiB, more than this process's file-size limit ({soft} bytes, "
                "ulimit -f); raise the limit or train a smaller --model_name"
            )
        where = _existing_ancestor(self.outpath)
        try:
            free = shutil.disk_usage(where).free
        except OSError:
            free = need
        if free < need:
            raise XvrOutputError(
                f"could not write {self.outpath / '0000.pth'}: a checkpoint takes about "
                f"{need / 2**20:.1f} MiB and {where} has {free / 2**20:.1f} MiB free; free some "
                "disk space or choose another output folder"
            )

    def _renderer(self, index: int):
        """(DRR, HU volume, template->volume warp or None) for volume `index`."""
        from ..render import make_drr

        if index in self._drrs and self.volumes.single:
            return self._drrs[index]
        subject = self.volumes.subject(index)
        drr = make_drr(
            subject,
            self.intrinsics,
            self.config.renderer,
            self.config.reverse_x_axis,
            self.config.voxel_shift,
            device=self.device,
        )
        hu = subject.volume.data.squeeze().to(self.device, torch.float32)
        warp = None
        if self.config.warp is not None:
            from .warp import reframe

            patient_centre = self.volumes.last_centre_ras
            warp = reframe(self.config.warp, self.template_centre, patient_centre, self.config.invert).to(
                self.device
            )
        entry = (drr, hu, warp)
        if self.volumes.single:
            self._drrs[index] = entry
        return entry
