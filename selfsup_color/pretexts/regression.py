"""The paper's L2 baseline: the network predicts ab itself (2 channels), unweighted by default."""

from __future__ import annotations

from torch import Tensor

from ..core.checks import check_image_batch, compute_dtype
from ..core.decode import DEFAULT_TEMPERATURE
from ..core.loss import Reduction, regression_loss
from ..core.targets import ColorizationTargets
from .base import Pretext, register_pretext


@register_pretext
class RegressionPretext(Pretext):
    """1/2 ||ab_pred - ab_true||^2 per pixel; lam = 1 (no rebalancing: a rebalanced L2 over-saturates)."""

    name = "regression"
    num_outputs = 2
    default_lam = 1.0

    def loss(self, output: Tensor, targets: ColorizationTargets, reduction: Reduction = "batch") -> Tensor:
        return regression_loss(output, targets.ab, targets.pixel_weight, targets.nongray, reduction)

    def decode(self, output: Tensor, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
        """The output itself (``temperature`` is unused), in float32 for half-precision outputs."""
        check_image_batch(output, "pred_ab", self.num_outputs)
        return output.to(compute_dtype(output))
