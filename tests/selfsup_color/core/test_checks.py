"""One validity check of per-bin vectors serves the prior file, the metrics, rebalancing and the plot."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from selfsup_color.core.bins import Q
from selfsup_color.core.checks import check_bin_vector, check_prior
from selfsup_color.core.metric_modules import RebalancedAuC
from selfsup_color.core.metrics import rebalanced_auc
from selfsup_color.core.prior import Prior, smooth_prior
from selfsup_color.core.rebalance import rebalance_weights
from selfsup_color.viz import prior_figure

AB = torch.zeros(1, 2, 4, 4)
CONSUMERS: dict[str, Callable[[torch.Tensor], object]] = {
    "check_prior": check_prior,
    "Prior": lambda p: Prior(p, None, None, None, None, None, None, "test"),
    "smooth_prior": smooth_prior,
    "rebalance_weights": lambda p: rebalance_weights(p, 0.5),
    "rebalanced_auc": lambda p: rebalanced_auc(AB, AB, p),
    "RebalancedAuC": RebalancedAuC,
    "prior_figure": prior_figure,
}
UNIFORM = torch.full((Q,), 1.0 / Q, dtype=torch.float64)


@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (UNIFORM[:-1], r"must have shape \(313,\), one entry per bin, got shape \(312,\)"),
        (UNIFORM.index_fill(0, torch.tensor([3]), -0.01), "must be non-negative, found minimum -0.01"),
        (UNIFORM.index_fill(0, torch.tensor([3]), float("nan")), "holds 1 non-finite values"),
    ],
)
def test_every_consumer_rejects_a_bad_vector_the_same_way(
    consumer: str, bad: torch.Tensor, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        CONSUMERS[consumer](bad)


def test_counts_need_not_sum_to_one_but_a_prior_must() -> None:
    counts = torch.arange(Q, dtype=torch.int64)
    check_bin_vector(counts, "counts")
    check_prior(UNIFORM)
    with pytest.raises(ValueError, match="must sum to 1"):
        check_prior(UNIFORM * 2)
    with pytest.raises(TypeError, match="floating point"):
        check_prior(counts)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        check_bin_vector([0.0] * Q, "prior")  # type: ignore[arg-type]
