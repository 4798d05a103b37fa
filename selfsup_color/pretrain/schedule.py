"""Learning-rate schedule and batch-size scaling as pure functions (the paper's step schedule)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

LrScaling = Literal["none", "linear", "sqrt"]


def check_schedule(milestones: Sequence[int], factors: Sequence[float], warmup_steps: int) -> None:
    """Milestones strictly increasing and positive, one positive factor each, warm-up >= 0."""
    if len(milestones) != len(factors):
        raise ValueError(
            f"lr_milestones ({len(milestones)}) and lr_factors ({len(factors)}) must have the same length"
        )
    if any(m <= 0 for m in milestones) or any(b <= a for a, b in itertools.pairwise(milestones)):
        raise ValueError(f"lr_milestones must be positive and strictly increasing, got {list(milestones)}")
    if any(not (f > 0 and math.isfinite(f)) for f in factors):
        raise ValueError(f"lr_factors must be positive and finite, got {list(factors)}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")


def lr_factor(step: int, milestones: Sequence[int], factors: Sequence[float], warmup_steps: int = 0) -> float:
    """Multiplier of the base lr at optimiser ``step``: linear warm-up, then piecewise constant.

    The paper: base 3e-5, factor 1/3 from 200k and 0.1 from 375k iterations (1e-5, 3e-6).
    """
    factor = 1.0
    for milestone, value in zip(milestones, factors, strict=True):
        if step >= milestone:
            factor = value
    if warmup_steps and step < warmup_steps:
        factor *= (step + 1) / warmup_steps
    return factor


def scaled_lr(lr: float, global_batch: int, base_batch: int, rule: LrScaling) -> float:
    """``lr`` tuned at ``base_batch`` moved to ``global_batch`` (``linear``: Goyal et al. 2017)."""
    if rule == "none":
        return lr
    ratio = global_batch / base_batch
    if rule == "linear":
        return lr * ratio
    if rule == "sqrt":
        return lr * math.sqrt(ratio)
    raise ValueError(f"lr_scaling must be 'none', 'linear' or 'sqrt', got {rule!r}")
