"""Per-batch target preparation on the device: uint8 RGB -> network input and training targets.

One module call turns a uint8 N x 3 x H x W batch into the L channel at full resolution, the ground
truth ab at the output resolution (``ab[..., ::4, ::4]``, the top-left pixel of each 4 x 4 block, as
the reference model subsamples), its sparse soft targets, the class-rebalancing weight of each pixel
and the non-gray mask. All of it is tensor ops with no host sync: it runs wherever the batch is, and
``compile=True`` fuses it with ``torch.compile``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .bins import Q
from .checks import check_image_batch, check_range
from .color import (
    ab_from_linear,
    colourful,
    lightness_from_luminance,
    rgb_to_ab,
    rgb_to_lightness,
    uint8_luminance,
    uint8_tables,
)
from .encode import DEFAULT_K, DEFAULT_SIGMA, SoftTargets, gaussian_weights
from .knn import candidate_codes, candidate_major, cell_index, gather_codes, select_bins

OUTPUT_STRIDE = 4
"""Output resolution of the network relative to its input: targets, prior, networks and pretexts use it."""
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


def gather_uint8(
    rgb: Tensor, luminance_lut: Tensor, linear_lut: Tensor, stride: int
) -> tuple[Tensor, Tensor]:
    """Table look-ups of a uint8 batch: full-resolution luminance Y and subsampled linear RGB."""
    # Compiled: int32 indexing (inductor's fused gathers read less memory). Eager: torch.take, which
    # needs int64 but costs half of advanced indexing on CPUs.
    compiling = torch.compiler.is_compiling()
    codes = rgb.int() if compiling else rgb.long()
    look_up = _index if compiling else torch.take
    linear = look_up(linear_lut, codes[:, :, ::stride, ::stride])
    return uint8_luminance(codes, luminance_lut, look_up), linear


def _index(table: Tensor, codes: Tensor) -> Tensor:
    return table[codes]


def lab_from_linear(y: Tensor, linear: Tensor, gray_threshold: float) -> tuple[Tensor, ...]:
    """Arithmetic stage: L (N x 1 x H x W), ab (N x 2 x h x w), its a, b, table cells and non-gray mask."""
    ab = ab_from_linear(linear)
    return lightness_from_luminance(y), ab, *encoding_inputs(ab, gray_threshold)


def encoding_inputs(ab: Tensor, gray_threshold: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Contiguous a and b, their table cells and the non-gray mask of an ab map."""
    a, b = (x.contiguous() for x in ab.unbind(1))
    return a, b, cell_index(a, b), colourful(ab, gray_threshold)


def soft_targets(
    a: Tensor, b: Tensor, codes: Tensor, class_weights: Tensor, k: int, sigma: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Selection stage: sparse soft targets (N x k x h x w index and weight) and pixel weights."""
    index, excess, nearest = select_bins(a, b, codes, k)
    shape = (k, *a.shape)
    weight = gaussian_weights(excess.view(shape), sigma, dim=0)
    return index.view(shape).movedim(0, 1), weight.movedim(0, 1), class_weights[nearest.view(a.shape)]


class TargetBuilder(nn.Module):
    """Turns RGB batches (uint8, or float in [0, 1]) into :class:`ColorizationTargets`.

    ``class_weights`` (Q,) are the rebalancing weights (see ``rebalance_weights``); None means
    uniform (no rebalancing). Tables live in buffers, so ``.to(device)`` moves everything.
    ``compile=True`` runs each stage through ``torch.compile`` (table look-ups and arithmetic are
    separate stages, so the arithmetic vectorises on CPUs). uint8 batches in channels-last memory
    (a zero-copy ``permute(0, 3, 1, 2)`` of decoded N x H x W x 3 images) are the fastest input.
    """

    def __init__(
        self,
        class_weights: Tensor | None = None,
        k: int = DEFAULT_K,
        sigma: float = DEFAULT_SIGMA,
        stride: int = OUTPUT_STRIDE,
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
        linear, luminance = uint8_tables()
        self.register_buffer("linear_lut", linear, persistent=False)
        self.register_buffer("luminance_lut", luminance, persistent=False)
        self.register_buffer("knn_codes", candidate_codes(k), persistent=False)
        self._compiled: dict[Callable[..., Any], Callable[..., Any]] = {}
        self.compile_stages = compile

    def _run(self, stage: Callable[..., Any], *args: Any) -> Any:
        if not self.compile_stages:
            return stage(*args)
        if stage not in self._compiled:
            compiled = torch.compile(stage, dynamic=False)
            try:
                result = compiled(*args)
            except Exception as error:  # no C++ compiler, unsupported platform, ...: keep training
                warnings.warn(
                    f"torch.compile failed for target stage {stage.__name__} ({type(error).__name__}: "
                    f"{error}); running TargetBuilder stages eagerly instead",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self.compile_stages = False
                return stage(*args)
            self._compiled[stage] = compiled
            return result
        return self._compiled[stage](*args)

    def _encode(
        self, lightness: Tensor, ab: Tensor, a: Tensor, b: Tensor, cell: Tensor, nongray: Tensor
    ) -> ColorizationTargets:
        codes = self._run(candidate_major, self._run(gather_codes, cell, self.knn_codes))
        index, weight, pixel_weight = self._run(
            soft_targets, a, b, codes, self.class_weights.float(), self.k, self.sigma
        )
        return ColorizationTargets(lightness, ab, SoftTargets(index, weight), pixel_weight, nongray)

    def forward(self, rgb: Tensor) -> ColorizationTargets:
        """Targets for an N x 3 x H x W batch: uint8, or float in [0, 1] (checked)."""
        check_image_batch(rgb, "rgb", 3)
        if rgb.dtype == torch.uint8:
            if self.linear_lut.dtype != torch.float32:  # the module was cast ("64-true", "bf16-true")
                self.linear_lut, self.luminance_lut = (t.to(rgb.device) for t in uint8_tables())
            y, linear = self._run(gather_uint8, rgb, self.luminance_lut, self.linear_lut, self.stride)
            return self._encode(*self._run(lab_from_linear, y, linear, self.gray_threshold))
        if not rgb.is_floating_point():
            raise TypeError(f"rgb must be uint8 or floating point in [0, 1], got {rgb.dtype}")
        check_range(rgb, "rgb", 0.0, 1.0)
        lightness = rgb_to_lightness(rgb.float(), check=False)
        ab = rgb_to_ab(rgb, self.stride, check=False)
        return self._encode(lightness, ab, *encoding_inputs(ab, self.gray_threshold))


def prepare_batch(rgb: Tensor, class_weights: Tensor | None = None, **options: Any) -> ColorizationTargets:
    """Functional form of :class:`TargetBuilder` (builds the module on the batch's device each call)."""
    return TargetBuilder(class_weights, **options).to(rgb.device)(rgb)
