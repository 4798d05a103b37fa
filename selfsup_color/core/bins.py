"""The Q = 313 in-gamut ab bins of Zhang et al. (grid 10), encoded in the package as a per-row table."""

from __future__ import annotations

import torch
from torch import Tensor

GRID = 10
"""Spacing of the ab grid, in Lab units."""

# For each a (grid row, ascending) the inclusive range of in-gamut b values. Together these rows
# give the 313 bin centres of the reference model, in class order (a ascending, then b ascending).
_GAMUT_ROWS: tuple[tuple[int, int, int], ...] = (
    (-90, 50, 90), (-80, 20, 90), (-70, 0, 90), (-60, -20, 90), (-50, -30, 100),
    (-40, -40, 100), (-30, -50, 100), (-20, -50, 100), (-10, -60, 100), (0, -70, 100),
    (10, -80, 90), (20, -80, 90), (30, -90, 90), (40, -100, 90), (50, -100, 80),
    (60, -110, 80), (70, -110, 80), (80, -110, 70), (90, -110, 70), (100, -90, 0),
)  # fmt: skip


def _bin_list() -> list[tuple[int, int]]:
    return [(a, b) for a, b_lo, b_hi in _GAMUT_ROWS for b in range(b_lo, b_hi + GRID, GRID)]


Q: int = len(_bin_list())
"""Number of ab classes (313)."""


def ab_bins(device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """The ``Q x 2`` bin centres (a, b), in class order."""
    return torch.tensor(_bin_list(), dtype=dtype, device=device)
