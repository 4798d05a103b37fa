"""Soft encoding of ground-truth ab onto the Q bins: k nearest bins, Gaussian-weighted (sigma 5).

The sparse form (bin indices and weights of the k nearest bins, nearest first) is what training
uses; the dense N x Q x H x W form is the same numbers scattered into zeros.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .bins import Q
from .checks import check_float_batch
from .knn import knn_bins

DEFAULT_K = 10
"""Neighbours per pixel: what the authors' code uses (the paper's "5" is a known typo)."""
DEFAULT_SIGMA = 5.0
"""Gaussian width of the soft encoding, in ab units."""


class SoftTargets(NamedTuple):
    """Sparse soft targets: ``index`` (int64) and ``weight`` (float32), both N x k x H x W.

    The k bins of a pixel come in no particular order; weights sum to 1 over them.
    """

    index: Tensor
    weight: Tensor

    def to_dense(self, num_classes: int = Q) -> Tensor:
        """Scatter into an N x Q x H x W distribution."""
        n, _, h, w = self.index.shape
        dense = torch.zeros(n, num_classes, h, w, dtype=self.weight.dtype, device=self.weight.device)
        return dense.scatter_(1, self.index, self.weight)


def gaussian_weights(excess: Tensor, sigma: float = DEFAULT_SIGMA, dim: int = 1) -> Tensor:
    """exp(-d^2 / (2 sigma^2)) normalised to sum 1 over the neighbours (``dim``).

    Takes the *excess* d^2 - d_nearest^2 of each neighbour: the normalised weights are the same and
    they stay finite for ab far outside the gamut, where every exp(-d^2 / 2 sigma^2) underflows.
    """
    # The nearest neighbour has excess 0, so no max-subtraction is needed: one exp and a sum.
    weight = torch.exp(excess * (-0.5 / (sigma * sigma)))
    return weight / weight.sum(dim=dim, keepdim=True)


def soft_encode_sparse(
    ab: Tensor, k: int = DEFAULT_K, sigma: float = DEFAULT_SIGMA, check: bool = True
) -> SoftTargets:
    """Soft targets of an N x 2 x H x W ab map in sparse form (see :class:`SoftTargets`).

    Exact for any finite ab, including values far outside the gamut. ``check`` raises on NaN or
    infinity (one host sync); float16 and bfloat16 inputs are computed in float32.
    """
    check_float_batch(ab, "ab", 2, finite=check)
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    index, excess, _ = knn_bins(ab, k)
    return SoftTargets(index, gaussian_weights(excess, sigma))


def soft_encode(ab: Tensor, k: int = DEFAULT_K, sigma: float = DEFAULT_SIGMA, check: bool = True) -> Tensor:
    """Soft targets of an N x 2 x H x W ab map as an N x Q x H x W distribution (float32)."""
    return soft_encode_sparse(ab, k, sigma, check).to_dense()


def nearest_bin(ab: Tensor, check: bool = True) -> Tensor:
    """Index of the nearest bin centre per pixel of an N x 2 x H x W ab map (N x H x W, int64)."""
    check_float_batch(ab, "ab", 2, finite=check)
    return knn_bins(ab, 1)[2]
