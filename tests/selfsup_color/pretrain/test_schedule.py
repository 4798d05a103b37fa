"""The paper's step schedule, warm-up and batch scaling."""

from __future__ import annotations

import math

import pytest

from selfsup_color.pretrain.schedule import check_schedule, lr_factor, scaled_lr

PAPER = ((200_000, 375_000), (1 / 3, 0.1))


@pytest.mark.parametrize(
    ("step", "lr"),
    [(0, 3e-5), (199_999, 3e-5), (200_000, 1e-5), (374_999, 1e-5), (375_000, 3e-6), (450_000, 3e-6)],
)
def test_paper_schedule(step: int, lr: float) -> None:
    assert 3e-5 * lr_factor(step, *PAPER) == pytest.approx(lr, rel=1e-12)


def test_warmup_ramps_linearly_then_holds() -> None:
    factors = [lr_factor(s, (), (), warmup_steps=4) for s in range(6)]
    assert factors == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_scaling_rules() -> None:
    assert scaled_lr(3e-5, 320, 40, "linear") == pytest.approx(2.4e-4)
    assert scaled_lr(3e-5, 160, 40, "sqrt") == pytest.approx(6e-5)
    assert scaled_lr(3e-5, 320, 40, "none") == 3e-5
    with pytest.raises(ValueError, match="lr_scaling"):
        scaled_lr(1.0, 1, 1, "cubic")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("milestones", "factors", "warmup", "match"),
    [
        ((10,), (), 0, "same length"),
        ((10, 5), (1, 1), 0, "increasing"),
        ((0,), (1,), 0, "positive"),
        ((10,), (math.nan,), 0, "finite"),
        ((), (), -1, "warmup"),
    ],
)
def test_bad_schedules_fail(milestones, factors, warmup, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        check_schedule(milestones, factors, warmup)
