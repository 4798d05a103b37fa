"""Input validation shared by the core functions: clear errors instead of silent garbage."""

from __future__ import annotations

import torch
from torch import Tensor

from .bins import Q

SUM_TOL = 1e-3
"""How far from 1 the sum of a probability vector may be."""


def check_image_batch(x: Tensor, name: str, channels: int) -> None:
    """Raise if ``x`` is not an ``N x channels x H x W`` tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f"{name} must have shape N x {channels} x H x W, got {tuple(x.shape)}; "
            f"add a batch dimension with x.unsqueeze(0) or move channels first with x.permute(0, 3, 1, 2)"
        )


def check_floating(x: Tensor, name: str) -> None:
    """Raise if ``x`` is not a floating point tensor."""
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating point tensor, got {x.dtype}; "
            "convert uint8 images with x.float() / 255 or use prepare_batch, which takes uint8 directly"
        )


def check_float_batch(x: Tensor, name: str, channels: int, finite: bool = False) -> None:
    """Raise unless ``x`` is a floating ``N x channels x H x W`` tensor (and, if ``finite``, finite)."""
    check_image_batch(x, name, channels)
    check_floating(x, name)
    if finite:
        check_finite(x, name)


def check_finite(x: Tensor, name: str) -> None:
    """Raise if ``x`` holds NaN or infinity (one device reduction, one host sync)."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} holds {bad} non-finite values (NaN or inf); check the data or the step that produced it"
        )


def check_range(x: Tensor, name: str, low: float, high: float, tol: float = 1e-4) -> None:
    """Raise if ``x`` is non-finite or leaves ``[low, high]`` by more than ``tol``."""
    check_finite(x, name)
    lo, hi = float(x.min()), float(x.max())
    if lo < low - tol or hi > high + tol:
        raise ValueError(
            f"{name} must lie in [{low}, {high}], found values in [{lo:.4g}, {hi:.4g}]; "
            "RGB floats are expected in [0, 1] (divide uint8 images by 255)"
        )


def compute_dtype(x: Tensor) -> torch.dtype:
    """Float32 for half-precision inputs (their rounding breaks colour maths), else the input dtype."""
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def check_bin_vector(x: Tensor, name: str) -> None:
    """Raise unless ``x`` is a tensor of shape ``(Q,)``, finite and non-negative (counts or a prior)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.shape != (Q,):
        raise ValueError(f"{name} must have shape ({Q},), one entry per bin, got shape {tuple(x.shape)}")
    if x.is_floating_point():
        check_finite(x, name)
    if bool((x < 0).any()):
        raise ValueError(f"{name} must be non-negative, found minimum {float(x.min()):.4g}")


def check_prior(p: Tensor, name: str = "prior") -> None:
    """Raise unless ``p`` is a floating probability vector over the Q bins (sum 1 within :data:`SUM_TOL`)."""
    check_bin_vector(p, name)
    check_floating(p, name)
    total = float(p.double().sum())
    if abs(total - 1.0) > SUM_TOL:
        raise ValueError(
            f"{name} must sum to 1 (within {SUM_TOL}), sums to {total:.6g}; "
            f"normalise it with {name} / {name}.sum(), or use smooth_prior for raw counts"
        )
