"""Tiny training settings shared by the training tests (32 px DRRs, a 0.4 M-parameter backbone)."""

from __future__ import annotations

TINY = dict(
    r1=(-30, 30),
    r2=(-15, 15),
    r3=(-2, 2),
    tx=(-15, 15),
    ty=(810, 890),
    tz=(-15, 15),
    batch_size=2,
    sdd=1020.0,
    height=32,
    delx=12.8,
    n_samples=48,
    model_name="test_resnet",
    norm_layer="groupnorm1",
    n_warmup_itrs=2,
    n_grad_accum_itrs=2,
    n_drr_every_itrs=2,
)


def cli_args(config: dict) -> list[str]:
    """TINY-style dict -> `xvr train` arguments."""
    args = []
    for key, value in config.items():
        if isinstance(value, tuple):
            args += [f"--{key}", *(str(v) for v in value)]
        else:
            args += [f"--{key}", str(value)]
    return args
