"""The paper's pretext: class-rebalanced cross-entropy over the Q = 313 ab bins, annealed-mean decoding."""

from __future__ import annotations

from torch import Tensor

from ..core.bins import Q
from ..core.decode import DEFAULT_TEMPERATURE, annealed_mean
from ..core.loss import Reduction, classification_loss
from ..core.targets import ColorizationTargets
from .base import Pretext, register_pretext


@register_pretext
class ClassificationPretext(Pretext):
    """Zhang et al. (2016): Q logits per pixel, soft-encoded targets, rebalancing with lam = 0.5."""

    name = "classification"
    num_outputs = Q
    default_lam = 0.5

    def loss(self, output: Tensor, targets: ColorizationTargets, reduction: Reduction = "batch") -> Tensor:
        return classification_loss(output, targets.targets, targets.pixel_weight, targets.nongray, reduction)

    def decode(self, output: Tensor, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
        return annealed_mean(output, temperature)
