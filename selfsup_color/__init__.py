"""selfsup-color: self-supervised representation learning with colorization as the pretext task.

The core maths (``selfsup_color.core``) is re-exported here: colour conversion, the Q = 313 ab
bins, soft encoding, the empirical prior and class rebalancing, losses, decoding and metrics.
"""

from .core.bins import GRID, Q, ab_bins
from .core.color import lab_to_rgb, rgb_to_ab, rgb_to_lab, rgb_to_lightness
from .core.decode import DEFAULT_TEMPERATURE, annealed_mean, expected_ab, mode
from .core.encode import SoftTargets, gaussian_weights, nearest_bin, soft_encode, soft_encode_sparse
from .core.loss import classification_loss, reduce_pixels, regression_loss, rescale_weight_decay
from .core.metrics import auc, colourfulness, psnr, rebalanced_auc
from .core.prior import (
    Prior,
    PriorEstimator,
    estimate_prior,
    load_prior,
    load_prior_table,
    save_prior,
    smooth_prior,
)
from .core.rebalance import rebalance_weights
from .core.targets import ColorizationTargets, TargetBuilder, prepare_batch

__version__ = "0.1.0.dev0"

_LAZY = {"AuC", "RebalancedAuC", "Colourfulness", "PSNR"}  # torchmetrics classes: slow to import


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from .core import metric_modules

        return getattr(metric_modules, name)
    raise AttributeError(f"module 'selfsup_color' has no attribute {name!r}")


__all__ = [
    "DEFAULT_TEMPERATURE",
    "GRID",
    "PSNR",
    "AuC",
    "ColorizationTargets",
    "Colourfulness",
    "Prior",
    "PriorEstimator",
    "Q",
    "RebalancedAuC",
    "SoftTargets",
    "TargetBuilder",
    "__version__",
    "ab_bins",
    "annealed_mean",
    "auc",
    "classification_loss",
    "colourfulness",
    "estimate_prior",
    "expected_ab",
    "gaussian_weights",
    "lab_to_rgb",
    "load_prior",
    "load_prior_table",
    "mode",
    "nearest_bin",
    "prepare_batch",
    "psnr",
    "rebalance_weights",
    "rebalanced_auc",
    "reduce_pixels",
    "regression_loss",
    "rescale_weight_decay",
    "rgb_to_ab",
    "rgb_to_lab",
    "rgb_to_lightness",
    "save_prior",
    "smooth_prior",
    "soft_encode",
    "soft_encode_sparse",
]
