"""torchmetrics ``Metric`` classes for the colorization metrics, for distributed accumulation.

Each accumulates sums (a distance histogram, or per-image sums and counts) that reduce across
processes by addition; see :mod:`selfsup_color.core.metrics` for the definitions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from .checks import check_bin_vector
from .metrics import (
    MAX_THRESHOLD,
    _check_data_range,
    _check_threshold,
    _inverse_prior,
    _rebalanced_histogram,
    ab_distance_histogram,
    auc_from_histogram,
    colourfulness,
    psnr,
)

__all__ = ["PSNR", "AuC", "Colourfulness", "RebalancedAuC"]


class _Float64Metric(Metric):
    """A metric whose states are float64 sums, whatever dtype the module holding it is cast to.

    torchmetrics keeps states through ``.half()`` and ``.bfloat16()``, but ``.to(dtype)`` (Lightning's
    "bf16-true" and "16-true") casts them, and a bfloat16 count stops growing at 256. A module is cast
    before its metrics hold anything, so each update and each sync first casts the states back to
    float64 with the public ``set_dtype``: sums accumulate and reduce across processes in float64.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def _float64_states(self) -> None:
        """Cast every state (and its default) back to float64 if a module cast changed one."""
        if any(state.dtype != torch.float64 for state in self.metric_state.values()):
            self.set_dtype(torch.float64)

    def sync(self, *args: Any, **kwargs: Any) -> None:
        """torchmetrics' ``sync``, with every process's states in float64 (a rank without updates too)."""
        self._float64_states()
        super().sync(*args, **kwargs)


class AuC(_Float64Metric):
    """AuC over a data set, accumulating the :func:`ab_distance_histogram` of each update.

    ``pred`` and ``target`` are ``N x 2 x H x W`` ab maps; ``compute()`` gives the float64 AuC.
    """

    hist: Tensor

    def __init__(self, max_threshold: int = MAX_THRESHOLD, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_threshold(max_threshold)
        self.max_threshold = max_threshold
        zeros = torch.zeros(max_threshold + 2, dtype=torch.float64)
        self.add_state("hist", default=zeros, dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        self._float64_states()
        self.hist += ab_distance_histogram(pred, target, None, self.max_threshold)

    def compute(self) -> Tensor:
        return auc_from_histogram(self.hist)


class RebalancedAuC(AuC):
    """Class-rebalanced AuC over a data set (see :func:`rebalanced_auc`).

    The float64 inverse-prior table is computed once from ``prior`` (``Q`` non-negative finite
    entries, one positive at least) and moves to the device of the data; it is not a state.
    """

    def __init__(self, prior: Tensor, max_threshold: int = MAX_THRESHOLD, **kwargs: Any) -> None:
        super().__init__(max_threshold, **kwargs)
        check_bin_vector(prior, "prior")
        p = prior.detach().to(device="cpu", dtype=torch.float64)
        if not bool((p > 0).any()):
            raise ValueError("prior must be positive somewhere")
        self.bin_weights = _inverse_prior(p, self.device)

    def update(self, pred: Tensor, target: Tensor) -> None:
        self._float64_states()
        self.bin_weights = self.bin_weights.to(target.device)
        self.hist += _rebalanced_histogram(pred, target, self.bin_weights, self.max_threshold)


class _MeanPerImage(_Float64Metric):
    """Mean of a per-image score over a data set: float64 sum and count, both summed."""

    total: Tensor
    count: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def _add(self, scores: Tensor) -> None:
        self._float64_states()
        self.total += scores.to(torch.float64).sum()
        self.count += scores.numel()

    def compute(self) -> Tensor:
        return self.total / self.count


class Colourfulness(_MeanPerImage):
    """Mean :func:`colourfulness` over the images of ``update(rgb)`` calls (float64)."""

    def update(self, rgb: Tensor) -> None:
        self._add(colourfulness(rgb))


class PSNR(_MeanPerImage):
    """Mean per-image :func:`psnr` over ``update(pred, target)`` calls (float64)."""

    def __init__(self, data_range: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_data_range(data_range)
        self.data_range = data_range

    def update(self, pred: Tensor, target: Tensor) -> None:
        self._add(psnr(pred, target, self.data_range))
