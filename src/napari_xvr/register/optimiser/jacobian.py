"""A render's exact Jacobian with respect to the pose parameters: whether a renderer gives one
(:class:`~napari_xvr.fastdrr.FastDRR`) and the Jacobian of images computed with the graph kept.
"""

from __future__ import annotations

import torch


def renders_jacobian(drr) -> bool:
    """Whether `drr`'s backward can be differentiated again (:class:`~napari_xvr.fastdrr.FastDRR`),
    so that LM's Gauss-Newton Hessians come from a render's own Jacobian, at the cost of a few
    backward passes, rather than from six more renders."""
    return bool(getattr(drr, "exact_jacobian", False)) and not getattr(drr, "checkpoint_gradients", False)


def image_jacobian(images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """(B, P, C, H, W): d images[b] / d params[b, k] for images (B, C, H, W) computed from
    params (B, P) with the graph kept (each image from its own row).

    The derivative of the vector-Jacobian product ``v -> J^T v`` with respect to ``v``: P
    backward passes through the graph's backward, none through the renderer's marching.
    """
    probe = torch.zeros_like(images, requires_grad=True)
    (vjp,) = torch.autograd.grad(images, params, grad_outputs=probe, create_graph=True)
    n = params.shape[1]
    columns = [torch.autograd.grad(vjp[:, k].sum(), probe, retain_graph=k < n - 1)[0] for k in range(n)]
    return torch.stack(columns, dim=1).detach()
