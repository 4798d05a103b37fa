"""The packaged gamut table reproduces the reference bins exactly."""

from __future__ import annotations

import numpy as np

from selfsup_color import GRID, Q, ab_bins


def test_bins_equal_the_reference_table_in_values_and_order(reference_bins: np.ndarray) -> None:
    assert Q == 313
    assert np.array_equal(ab_bins(dtype=__import__("torch").float64).numpy(), reference_bins)


def test_bins_lie_on_the_grid_sorted_by_a_then_b() -> None:
    centres = ab_bins().numpy()
    assert np.all(centres % GRID == 0)
    order = np.lexsort((centres[:, 1], centres[:, 0]))
    assert np.array_equal(order, np.arange(Q))
