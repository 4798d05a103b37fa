"""Colorization metrics of Zhang, Isola, Efros (ECCV 2016) and two extras, on batched tensors.

* AuC: area under the curve of the fraction of pixels whose predicted ab lies within ``t`` of the
  ground truth (L2 in ab space), for thresholds ``t = 0 .. 150``, normalised to [0, 1].
* Rebalanced AuC: the same with every pixel weighted by the inverse prior of its true ab bin.
* Colourfulness (Hasler & Süsstrunk 2003) and PSNR, per image.

The metric classes for distributed accumulation live in
:mod:`selfsup_color.core.metric_modules` (importing torchmetrics is slow, so they load lazily).
The functions are pure and stay on the input's device; none syncs with the host except through
:func:`~selfsup_color.core.encode.nearest_bin` (its finite check of the ground truth) in the
rebalanced AuC. Half-precision inputs are computed in float32. The :class:`~torchmetrics.Metric`
classes accumulate sums (a distance histogram, or per-image sums and counts) that reduce across
processes by addition.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .checks import check_bin_vector, check_float_batch, compute_dtype
from .encode import nearest_bin

__all__ = [
    "ab_distance_histogram",
    "auc",
    "auc_from_histogram",
    "colourfulness",
    "distance_buckets",
    "psnr",
    "rebalanced_auc",
]

MAX_THRESHOLD = 150
"""Largest ab distance threshold of the AuC curve (the paper's 150)."""

_MSE_FLOOR = 1e-10  # relative to data_range**2: identical images score 100 dB


def _check_pair(pred: Tensor, true: Tensor, names: tuple[str, str], channels: int) -> torch.dtype:
    """Check two ``N x channels x H x W`` float batches of one shape; return the compute dtype."""
    for x, name in zip((pred, true), names, strict=True):
        check_float_batch(x, name, channels)
    if pred.shape != true.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, "
            f"got {tuple(pred.shape)} and {tuple(true.shape)}"
        )
    dtype = torch.promote_types(pred.dtype, true.dtype)
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _check_threshold(max_threshold: int) -> None:
    if isinstance(max_threshold, bool) or not isinstance(max_threshold, int) or max_threshold < 1:
        raise ValueError(f"max_threshold must be a positive int, got {max_threshold!r}")


def ab_distance_histogram(
    pred_ab: Tensor,
    true_ab: Tensor,
    pixel_weights: Tensor | None = None,
    max_threshold: int = MAX_THRESHOLD,
) -> Tensor:
    """Weighted histogram of per-pixel ab distances, ``max_threshold + 2`` float64 buckets.

    A pixel at L2 distance ``d`` between ``pred_ab`` and ``true_ab`` (both ``N x 2 x H x W``) adds
    its weight (``pixel_weights``, ``N x H x W``; 1 when None) to bucket ``ceil(d)``, or to the
    last bucket when ``d > max_threshold``. Since ``d <= t`` iff ``ceil(d) <= t`` for integer
    ``t``, ``hist.cumsum(0)[t]`` is the weight of pixels with ``d <= t``. Non-finite distances
    (NaN predictions) count as beyond every threshold. Float64 keeps counts exact past 2^24.
    """
    bucket = distance_buckets(pred_ab, true_ab, max_threshold)
    n, _, h, w = true_ab.shape
    if pixel_weights is None:
        weights = torch.ones(n * h * w, dtype=torch.float64, device=true_ab.device)
    else:
        if not isinstance(pixel_weights, Tensor) or pixel_weights.shape != (n, h, w):
            shape = tuple(pixel_weights.shape) if isinstance(pixel_weights, Tensor) else None
            raise ValueError(f"pixel_weights must have shape {(n, h, w)} (N x H x W), got {shape}")
        weights = pixel_weights.reshape(-1).to(torch.float64)
    hist = torch.zeros(max_threshold + 2, dtype=torch.float64, device=true_ab.device)
    return hist.index_add_(0, bucket, weights)


def distance_buckets(pred_ab: Tensor, true_ab: Tensor, max_threshold: int = MAX_THRESHOLD) -> Tensor:
    """Flat int64 bucket ``ceil(d)`` of each pixel's ab distance, ``max_threshold + 1`` beyond it.

    ``pred_ab`` and ``true_ab`` are ``N x 2 x H x W``; the result has ``N * H * W`` entries in
    (n, h, w) order. Non-finite distances (NaN predictions) go to the last bucket.
    """
    dtype = _check_pair(pred_ab, true_ab, ("pred_ab", "true_ab"), 2)
    _check_threshold(max_threshold)
    dist = (pred_ab.to(dtype) - true_ab.to(dtype)).square().sum(dim=1).sqrt()
    return dist.nan_to_num(nan=float("inf")).ceil().clamp(max=max_threshold + 1).long().reshape(-1)


def auc_from_histogram(hist: Tensor) -> Tensor:
    """Area under the cumulative curve of an :func:`ab_distance_histogram`, in [0, 1] (0-dim).

    The curve is ``c(t) = hist.cumsum(0)[t] / hist.sum()`` for ``t = 0 .. max_threshold`` (with
    ``max_threshold = len(hist) - 2``). The paper integrates this cumulative mass function for
    ``t`` from 0 to 150 and normalises; here the integral is the trapezoidal rule on the integer
    thresholds divided by ``max_threshold``, so a perfect prediction scores exactly 1. An empty
    histogram (zero total weight) gives NaN.
    """
    if not isinstance(hist, Tensor) or hist.dim() != 1 or hist.numel() < 3:
        shape = tuple(hist.shape) if isinstance(hist, Tensor) else type(hist).__name__
        raise ValueError(f"hist must be 1-D with max_threshold + 2 >= 3 buckets, got {shape}")
    hist = hist.to(torch.float64)
    curve = hist.cumsum(0)[:-1] / hist.sum()
    return torch.trapezoid(curve) / (hist.numel() - 2)


def auc(pred_ab: Tensor, true_ab: Tensor, max_threshold: int = MAX_THRESHOLD) -> Tensor:
    """AuC of ab predictions (``N x 2 x H x W``), every pixel weighted 1; a float64 0-dim tensor."""
    return auc_from_histogram(ab_distance_histogram(pred_ab, true_ab, None, max_threshold))


def _inverse_prior(prior: Tensor, device: torch.device) -> Tensor:
    """Per-bin weights ``1 / prior`` (float64); entries <= 0 get the smallest positive entry.

    A bin of prior 0 was never seen when the prior was estimated; an infinite (or 1e12) weight
    would let one such pixel outweigh the whole image, so it gets the weight of the rarest seen bin.
    """
    p = prior.to(device=device, dtype=torch.float64)
    floor = torch.where(p > 0, p, torch.inf).min()
    return p.clamp(min=floor).reciprocal()


def _rebalanced_histogram(
    pred_ab: Tensor, true_ab: Tensor, bin_weights: Tensor, max_threshold: int
) -> Tensor:
    _check_pair(pred_ab, true_ab, ("pred_ab", "true_ab"), 2)
    weights = bin_weights.to(true_ab.device)[nearest_bin(true_ab)]
    return ab_distance_histogram(pred_ab, true_ab, weights, max_threshold)


def rebalanced_auc(
    pred_ab: Tensor, true_ab: Tensor, prior: Tensor, max_threshold: int = MAX_THRESHOLD
) -> Tensor:
    """Class-rebalanced AuC: each pixel weighted by ``1 / prior[nearest_bin(true_ab)]``.

    ``prior`` holds the ``Q`` bin probabilities (its scale does not matter). This is the paper's
    rebalancing with lambda = 0. Bins with prior <= 0 get the weight of the rarest bin with a
    positive prior rather than an infinite one. Returns a float64 0-dim tensor.
    """
    check_bin_vector(prior, "prior")
    bin_weights = _inverse_prior(prior, true_ab.device)
    return auc_from_histogram(_rebalanced_histogram(pred_ab, true_ab, bin_weights, max_threshold))


def colourfulness(rgb: Tensor) -> Tensor:
    """Hasler & Süsstrunk (2003) colourfulness of each image of an ``N x 3 x H x W`` RGB batch.

    RGB in [0, 1] is scaled to [0, 255]; with ``rg = R - G`` and ``yb = (R + G) / 2 - B`` over the
    pixels of an image, ``C = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)``,
    using the population standard deviation (ddof = 0). Gray images score 0. Returns shape N,
    float32 for half-precision input, else the input dtype.
    """
    check_float_batch(rgb, "rgb", 3)
    r, g, b = (rgb.to(compute_dtype(rgb)) * 255.0).unbind(1)
    rg = r - g
    yb = 0.5 * (r + g) - b
    dims = (1, 2)
    sigma = (rg.var(dim=dims, correction=0) + yb.var(dim=dims, correction=0)).sqrt()
    mu = torch.hypot(rg.mean(dim=dims), yb.mean(dim=dims))
    return sigma + 0.3 * mu


def _check_data_range(data_range: float) -> None:
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float)) or data_range <= 0:
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")


def psnr(pred_rgb: Tensor, true_rgb: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-image PSNR in dB, ``10 log10(data_range^2 / MSE)`` over all channels and pixels.

    Inputs are ``N x 3 x H x W``. The MSE is floored at ``1e-10 * data_range^2``, so identical
    images give 100 dB instead of infinity. Returns shape N (float32 for half-precision input).
    """
    dtype = _check_pair(pred_rgb, true_rgb, ("pred_rgb", "true_rgb"), 3)
    _check_data_range(data_range)
    mse = (pred_rgb.to(dtype) - true_rgb.to(dtype)).square().mean(dim=(1, 2, 3))
    peak = float(data_range) ** 2
    return 10.0 * torch.log10(peak / mse.clamp(min=_MSE_FLOOR * peak))
