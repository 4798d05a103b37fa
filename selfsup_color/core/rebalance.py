"""Class rebalancing weights (Zhang et al., Eq. 3-4): rare colours weigh more in the loss.

``w = ((1 - lam) p~ + lam / Q)^-1``, scaled so that ``sum_q p~_q w_q = 1`` (the expected weight of
a pixel is 1). With ``lam = 1`` all weights are 1; the paper uses ``lam = 0.5``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .bins import Q
from .checks import check_prior

MIN_MIXED_MASS = 1e-12
"""Floor of the mixed distribution ``(1 - lam) p + lam / Q`` (probability units).

It only acts when ``lam`` is (nearly) 0 and a bin has (nearly) no mass: the weight of a bin with
zero prior is then ``1e12 / Z`` instead of infinite. Such bins carry no mass, so the normalisation
is unaffected, but a pixel falling in one would dominate the loss: use ``lam > 0`` for priors with
empty bins.
"""


def rebalance_weights(prior: Tensor, lam: float = 0.5) -> Tensor:
    """Per-bin loss weights of shape ``(Q,)`` for ``prior``, in its floating dtype and device.

    ``prior`` must be non-negative, finite and sum to 1 within 1e-3 (it is renormalised exactly
    before use). Computed in float64.
    """
    check_prior(prior, "prior")
    in_range = isinstance(lam, (int, float)) and 0.0 <= lam <= 1.0  # False for NaN
    if isinstance(lam, bool) or not in_range:
        raise ValueError(f"lam must be a number in [0, 1] (the paper uses 0.5), got {lam!r}")
    p = prior.to(torch.float64)
    p = p / p.sum()
    w = ((1.0 - lam) * p + lam / Q).clamp(min=MIN_MIXED_MASS).reciprocal()
    return (w / (p * w).sum()).to(prior.dtype)


def effective_sample_size(weights: Tensor, dim: int | None = None) -> Tensor:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of non-negative ``weights`` (float64).

    ``n`` equal weights give ``n``; one weight among zeros gives 1. Over pixels of a batch it says
    how many equally weighted pixels the rebalanced loss is worth; over per-image weight sums, how
    many images. All-zero weights give NaN.
    """
    if weights.is_complex() or not weights.is_floating_point():
        raise TypeError(f"weights must be a real floating tensor, got {weights.dtype}")
    if bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
        raise ValueError("weights must be finite and non-negative")
    w = weights.to(torch.float64)
    total = w.sum() if dim is None else w.sum(dim)
    squares = w.square().sum() if dim is None else w.square().sum(dim)
    return total.square() / squares
