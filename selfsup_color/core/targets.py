"""Per-batch target preparation on the device: uint8 RGB -> network input and training targets.

One module call turns a uint8 N x 3 x H x W batch into the L channel at full resolution, the ground
truth ab at the output resolution (``ab[..., ::4, ::4]``, the top-left pixel of each 4 x 4 block, as
the reference model subsamples), its sparse soft targets, the class-rebalancing weight of each pixel
and the non-gray mask. All of it is tensor ops with no host sync: it runs wherever the batch is, and
``compile=True`` fuses it with ``torch.compile``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .bins import Q
from .checks import check_image_batch, check_range
from .color import XYZ_FROM_RGB, lab_compand, linear_rgb_to_lab, rgb_to_lab, srgb_to_linear
from .encode import DEFAULT_K, DEFAULT_SIGMA, SoftTargets, gaussian_weights
from .knn import KnnTables, knn_tables, table_search

DEFAULT_STRIDE = 4
"""Output resolution of the network relative to its input."""
GRAY_THRESHOLD = 5.0
"""An image is grayscale when no target pixel has |a| or |b| above this."""


class ColorizationTargets(NamedTuple):
    """Everything a training step needs from a batch of images."""

    lightness: Tensor
    """N x 1 x H x W, L in [0, 100], float32: the network input before normalisation."""
    ab: Tensor
    """N x 2 x h x w ground-truth ab at the output resolution."""
    targets: SoftTargets
    """Sparse soft targets over the Q bins, N x k x h x w."""
    pixel_weight: Tensor
    """N x h x w class-rebalancing weight of each pixel's nearest bin."""
    nongray: Tensor
    """N bool: False for grayscale images, which carry no loss."""


def _uint8_linear_lut() -> Tensor:
    """The 256 linear-light values of 8-bit sRGB codes, computed in float64."""
    return srgb_to_linear(torch.arange(256, dtype=torch.float64) / 255.0)


class TargetBuilder(nn.Module):
    """Turns RGB batches (uint8, or float in [0, 1]) into :class:`ColorizationTargets`.

    ``class_weights`` (Q,) are the rebalancing weights (see ``rebalance_weights``); None means
    uniform (no rebalancing). Tables live in buffers, so ``.to(device)`` moves everything.
    """

    def __init__(
        self,
        class_weights: Tensor | None = None,
        k: int = DEFAULT_K,
        sigma: float = DEFAULT_SIGMA,
        stride: int = DEFAULT_STRIDE,
        gray_threshold: float = GRAY_THRESHOLD,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if class_weights is None:
            class_weights = torch.ones(Q)
        if class_weights.shape != (Q,):
            raise ValueError(f"class_weights must have shape ({Q},), got {tuple(class_weights.shape)}")
        self.k, self.sigma, self.stride, self.gray_threshold = k, sigma, stride, gray_threshold
        self.register_buffer("class_weights", class_weights.float().clone(), persistent=False)
        lin = _uint8_linear_lut()
        y_row = torch.tensor(XYZ_FROM_RGB[1], dtype=torch.float64)
        self.register_buffer("linear_lut", lin.float(), persistent=False)
        self.register_buffer("luminance_lut", (y_row[:, None] * lin[None]).float(), persistent=False)
        tables = knn_tables(k)
        self.register_buffer("knn_codes", tables.codes, persistent=False)
        self.register_buffer("knn_centre_a", tables.centre_a, persistent=False)
        self.register_buffer("knn_centre_b", tables.centre_b, persistent=False)
        self._impl = torch.compile(self._targets_uint8, dynamic=False) if compile else self._targets_uint8

    def _tables(self) -> KnnTables:
        return KnnTables(self.knn_codes, self.knn_centre_a, self.knn_centre_b)

    def _encode(self, lightness: Tensor, ab: Tensor) -> ColorizationTargets:
        a, b = ab.unbind(1)
        index, excess = table_search(a.contiguous(), b.contiguous(), self._tables(), self.k)
        index, excess = index.movedim(0, 1), excess.movedim(0, 1)
        nongray = (ab.abs() > self.gray_threshold).flatten(1).any(dim=1)
        targets = SoftTargets(index, gaussian_weights(excess, self.sigma))
        return ColorizationTargets(lightness, ab, targets, self.class_weights[index[:, 0]], nongray)

    def _targets_uint8(self, rgb: Tensor) -> ColorizationTargets:
        codes = rgb.int()
        lut = self.luminance_lut
        y = lut[0][codes[:, 0]] + lut[1][codes[:, 1]] + lut[2][codes[:, 2]]
        lightness = (116.0 * lab_compand(y) - 16.0).unsqueeze(1)
        sub = self.linear_lut[codes[:, :, :: self.stride, :: self.stride]]
        return self._encode(lightness, linear_rgb_to_lab(sub)[:, 1:])

    def forward(self, rgb: Tensor) -> ColorizationTargets:
        """Targets for an N x 3 x H x W batch: uint8, or float in [0, 1] (checked)."""
        check_image_batch(rgb, "rgb", 3)
        if rgb.dtype == torch.uint8:
            return self._impl(rgb)
        if not rgb.is_floating_point():
            raise TypeError(f"rgb must be uint8 or floating point in [0, 1], got {rgb.dtype}")
        check_range(rgb, "rgb", 0.0, 1.0)
        lab = rgb_to_lab(rgb.float(), check=False)
        return self._encode(lab[:, :1], lab[:, 1:, :: self.stride, :: self.stride].contiguous())


def prepare_batch(rgb: Tensor, class_weights: Tensor | None = None, **options: object) -> ColorizationTargets:
    """Functional form of :class:`TargetBuilder` (builds the module on the batch's device each call)."""
    return TargetBuilder(class_weights, **options).to(rgb.device)(rgb)  # type: ignore[arg-type]
