"""Colorization losses as pure functions: rebalanced multinomial cross-entropy and the L2 baseline.

Reduction. ``"batch"`` (the default) sums the weighted per-pixel losses over all pixels and divides
by the batch size, as the reference Caffe model does. ``"mean"`` divides by the number of pixels
instead, ``"sum"`` does not divide, ``"none"`` returns the N x h x w map. Adam's plain-L2 weight
decay (1e-3 in the paper's recipe) is added to the gradient, so it is only right at the loss scale it
was tuned for: the paper recipe uses ``"batch"``; with ``"mean"`` use
:func:`rescale_weight_decay` to divide the decay by the pixels per image (h * w).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .bins import Q
from .checks import check_image_batch, compute_dtype
from .encode import SoftTargets

Reduction = Literal["batch", "mean", "sum", "none"]


def rescale_weight_decay(weight_decay: float, pixels_per_image: int) -> float:
    """The L2 decay that, with ``"mean"`` reduction, matches ``weight_decay`` under ``"batch"``."""
    return weight_decay / pixels_per_image


def reduce_pixels(
    per_pixel: Tensor,
    pixel_weight: Tensor | None = None,
    nongray: Tensor | None = None,
    reduction: Reduction = "batch",
) -> Tensor:
    """Weight an N x h x w per-pixel loss by ``pixel_weight`` (N x h x w) and ``nongray`` (N), then reduce.

    The reduction every colorization loss shares (see the module docstring); a new pretext's loss
    computes its per-pixel map and ends with this call. Raises ValueError for mis-shaped weights or
    an unknown ``reduction``.
    """
    if per_pixel.dim() != 3:
        raise ValueError(f"per_pixel must be N x h x w, got shape {tuple(per_pixel.shape)}")
    n, h, w = per_pixel.shape
    if pixel_weight is not None:
        if pixel_weight.shape != per_pixel.shape:
            raise ValueError(
                f"pixel_weight must have shape {tuple(per_pixel.shape)}, got {tuple(pixel_weight.shape)}"
            )
        per_pixel = per_pixel * pixel_weight
    if nongray is not None:
        if nongray.shape != (n,):
            raise ValueError(f"nongray must have shape ({n},), got {tuple(nongray.shape)}")
        per_pixel = per_pixel * nongray.to(per_pixel.dtype).view(n, 1, 1)
    if reduction == "none":
        return per_pixel
    total = per_pixel.sum()
    if reduction == "sum":
        return total
    if reduction == "batch":
        return total / n
    if reduction == "mean":
        return total / (n * h * w)
    raise ValueError(f"reduction must be one of 'batch', 'mean', 'sum', 'none'; got {reduction!r}")


def classification_loss(
    logits: Tensor,
    targets: SoftTargets | Tensor,
    pixel_weight: Tensor | None = None,
    nongray: Tensor | None = None,
    reduction: Reduction = "batch",
) -> Tensor:
    """Weighted multinomial cross-entropy -sum_q z_q log softmax(logits)_q per pixel.

    ``logits``: N x Q x h x w. ``targets``: sparse :class:`SoftTargets` (N x k x h x w) or a dense
    N x Q x h x w distribution. ``pixel_weight`` (N x h x w): the class-rebalancing weight of each
    pixel's nearest bin. ``nongray`` (N): 0 for grayscale images, which then add nothing. The
    log-softmax runs in float32 at least, so bf16/fp16 logits are safe.
    """
    check_image_batch(logits, "logits", Q)
    x = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    log_probs = torch.log_softmax(x, dim=1)
    if isinstance(targets, SoftTargets):
        expected = (logits.shape[0], targets.index.shape[1], *logits.shape[2:])
        for name, part in (("index", targets.index), ("weight", targets.weight)):
            if tuple(part.shape) != expected:
                raise ValueError(
                    f"sparse targets' {name} must have shape {expected}, got {tuple(part.shape)}"
                )
        per_pixel = -(targets.weight.to(log_probs.dtype) * log_probs.gather(1, targets.index)).sum(1)
    else:
        if targets.shape != logits.shape:
            raise ValueError(
                f"dense targets must have the logits' shape {tuple(logits.shape)}, got {tuple(targets.shape)}"
            )
        per_pixel = -(targets.to(log_probs.dtype) * log_probs).sum(1)
    return reduce_pixels(per_pixel, pixel_weight, nongray, reduction)


def regression_loss(
    pred_ab: Tensor,
    target_ab: Tensor,
    pixel_weight: Tensor | None = None,
    nongray: Tensor | None = None,
    reduction: Reduction = "batch",
) -> Tensor:
    """The paper's L2 baseline: 1/2 ||ab_pred - ab_true||^2 per pixel, reduced like the CE loss."""
    check_image_batch(pred_ab, "pred_ab", 2)
    if target_ab.shape != pred_ab.shape:
        raise ValueError(f"target_ab must have shape {tuple(pred_ab.shape)}, got {tuple(target_ab.shape)}")
    dtype = torch.promote_types(compute_dtype(pred_ab), compute_dtype(target_ab))
    per_pixel = 0.5 * (pred_ab.to(dtype) - target_ab.to(dtype)).square().sum(1)
    return reduce_pixels(per_pixel, pixel_weight, nongray, reduction)
