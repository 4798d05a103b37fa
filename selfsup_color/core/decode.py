"""From predicted bin logits to ab: annealed mean (the paper's decoding), mean and mode."""

from __future__ import annotations

import torch
from torch import Tensor

from .bins import Q, ab_bins
from .checks import check_image_batch

DEFAULT_TEMPERATURE = 0.38
"""The paper's annealing temperature: between the mean (T = 1) and the mode (T -> 0)."""


def _check_logits(logits: Tensor) -> None:
    check_image_batch(logits, "logits", Q)


def expected_ab(probs: Tensor) -> Tensor:
    """N x Q x H x W probabilities -> their mean over the bin centres, N x 2 x H x W."""
    centres = ab_bins(probs.device, probs.dtype)
    return torch.einsum("nqhw,qc->nchw", probs, centres)


def annealed_mean(logits: Tensor, T: float = DEFAULT_TEMPERATURE) -> Tensor:
    """softmax(logits / T) averaged over the bin centres (N x 2 x H x W, float32 or wider).

    T = 1 gives the mean of the predicted distribution; T -> 0 approaches the mode.
    """
    _check_logits(logits)
    if T <= 0:
        raise ValueError(f"temperature T must be positive, got {T}; use mode() for T -> 0")
    x = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    return expected_ab(torch.softmax(x / T, dim=1))


def mode(logits: Tensor) -> Tensor:
    """The centre of the most probable bin per pixel (N x 2 x H x W)."""
    _check_logits(logits)
    centres = ab_bins(logits.device, torch.float32)
    return centres[logits.argmax(dim=1)].permute(0, 3, 1, 2)
