"""Weights & Biases logging when it is installed and configured, else nothing."""

from __future__ import annotations

import os

from .config import TrainConfig


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
    configured = bool(os.environ.get("WANDB_API_KEY")) or os.environ.get("WANDB_MODE") in (
        "offline",
        "disabled",
    )
    if not configured:
        try:
            configured = bool(wandb.api.api_key)
        except Exception:
            configured = False
    if not configured:
        notes.append("wandb is not configured (no WANDB_API_KEY/login): losses go to losses.csv only")
        return None
    return wandb.init(
        project=cfg.project,
        group=cfg.group,
        name=cfg.name,
        id=cfg.id,
        resume="allow",
        config=cfg.to_dict(),
        dir=str(cfg.outpath),
    )
