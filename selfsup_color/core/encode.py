"""Soft encoding of ab values onto the Q bins (placeholder brute force; replaced by the fast encoder)."""

from __future__ import annotations

import torch
from torch import Tensor

from .bins import ab_bins


def nearest_bin(ab: Tensor) -> Tensor:
    """Index of the nearest bin centre for every pixel of an N x 2 x H x W ab map (N x H x W, int64)."""
    centres = ab_bins(ab.device, torch.float32)
    flat = ab.float().permute(0, 2, 3, 1).reshape(-1, 2)
    idx = torch.cdist(flat, centres).argmin(dim=1)
    return idx.view(ab.shape[0], ab.shape[2], ab.shape[3])
