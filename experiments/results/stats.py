"""Statistics of per-seed results: mean and spread, contrasts with 95% intervals, shares of a gap.

Seeds of different arms are independent runs, so a contrast between two arms is Welch's difference
of means: its interval uses the t distribution with the Welch-Satterthwaite degrees of freedom. A
difference is claimed only where its interval excludes 0 (:attr:`Contrast.excludes_zero`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (None for a single value) of ``n`` values."""

    mean: float
    sd: float | None
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.1f}" if self.sd is None else f"{self.mean:.1f} ± {self.sd:.1f}"


def summarize(values: Sequence[float]) -> Summary:
    """Mean ± sd (n - 1 in the denominator) of at least one value."""
    if not values:
        raise ValueError("summarize needs at least one value")
    sd = statistics.stdev(values) if len(values) > 1 else None
    return Summary(statistics.fmean(values), sd, len(values))


@dataclass(frozen=True)
class Contrast:
    """``mean(a) - mean(b)`` with its two-sided confidence interval at ``level``."""

    difference: float
    low: float
    high: float
    level: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0

    def __str__(self) -> str:
        return f"{self.difference:+.1f} [{self.low:+.1f}, {self.high:+.1f}]"


def welch_contrast(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Contrast:
    """Difference of means of two independent samples (each of 2 or more) and Welch's t-interval."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"a contrast needs 2 or more values per arm, got {len(a)} and {len(b)}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    difference = statistics.fmean(a) - statistics.fmean(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Contrast(difference, difference, difference, level)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(scipy_stats.t.ppf(0.5 + level / 2, df)) * se
    return Contrast(difference, difference - half, difference + half, level)


def gap_share(value: float, random: float, supervised: float, min_gap: float = 2.0) -> float | None:
    """Share of the gap from random init to supervised that ``value`` closes (None under ``min_gap``)."""
    gap = supervised - random
    return None if gap < min_gap else (value - random) / gap
