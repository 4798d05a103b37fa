"""Per-seed statistics against independent references (scipy's Welch test, hand computations)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from experiments.results.stats import gap_share, summarize, welch_contrast


def test_summary_is_mean_and_sample_sd() -> None:
    s = summarize([30.0, 32.0, 37.0])
    assert s.mean == pytest.approx(33.0) and s.sd == pytest.approx(np.std([30, 32, 37], ddof=1))
    assert str(s) == "33.0 ± 3.6" and str(summarize([41.25])) == "41.2"
    with pytest.raises(ValueError):
        summarize([])


@pytest.mark.parametrize("seed", range(5))
def test_welch_interval_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(40, 2, size=3), rng.normal(37, 1, size=4)
    c = welch_contrast(list(a), list(b))
    ci = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert c.difference == pytest.approx(a.mean() - b.mean())
    assert (c.low, c.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert c.excludes_zero == (ci.low > 0 or ci.high < 0)


def test_contrast_edge_cases() -> None:
    assert welch_contrast([40.0, 42.0, 44.0], [30.0, 31.0, 32.0]).excludes_zero
    assert not welch_contrast([40.0, 30.0, 50.0], [38.0, 41.0, 36.0]).excludes_zero
    same = welch_contrast([5.0, 5.0], [3.0, 3.0])  # no spread: the interval is the point
    assert (same.low, same.high) == (2.0, 2.0) and same.excludes_zero
    with pytest.raises(ValueError, match="2 or more"):
        welch_contrast([1.0], [2.0, 3.0])


def test_gap_share() -> None:
    assert gap_share(40.0, 30.0, 50.0) == pytest.approx(0.5)
    assert gap_share(25.0, 30.0, 50.0) == pytest.approx(-0.25)
    assert gap_share(40.0, 30.0, 31.0) is None  # a gap under 2 points says nothing
