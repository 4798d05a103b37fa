"""Input normalisation of the networks: CIE lightness in [0, 100] -> roughly [-0.5, 0.5]."""

from __future__ import annotations

from torch import Tensor

L_CENTER = 50.0
"""Lightness subtracted before scaling (the middle of the L range)."""
L_SCALE = 100.0
"""Divisor applied after centring (the width of the L range)."""


def normalize_lightness(lightness: Tensor) -> Tensor:
    """``(L - 50) / 100``: maps L = 0, 50, 100 to -0.5, 0, 0.5, as the authors' PyTorch port does."""
    return (lightness - L_CENTER) / L_SCALE
