"""selfsup-color: self-supervised representation learning with colorization as the pretext task."""

from .core.bins import GRID, Q, ab_bins
from .core.color import lab_to_rgb, rgb_to_lab
from .core.encode import nearest_bin

__version__ = "0.1.0.dev0"

__all__ = [
    "GRID",
    "Q",
    "__version__",
    "ab_bins",
    "lab_to_rgb",
    "nearest_bin",
    "rgb_to_lab",
]
