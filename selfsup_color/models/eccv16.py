"""The network of Zhang, Isola, Efros, "Colorful Image Colorization" (ECCV 2016), exactly.

Blocks conv1..conv7 are stacks of 3 x 3 convolutions (with bias) + ReLU, each closed by a
``BatchNorm2d(affine=False)``; the last convolution of conv1..conv3 has stride 2, conv5 and conv6 are
dilated by 2. conv8 upsamples by 2 (4 x 4 transposed convolution) and has no BatchNorm; a 1 x 1
convolution then gives the Q = 313 logits at 1/4 of the input resolution. 32,230,393 parameters at
``width=1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..core.bins import Q
from .base import ColorizationNet
from .init import check_scheme, checked_width, init_weights
from .layers import LogitsConv, conv_relu


@dataclass(frozen=True)
class BlockSpec:
    """One block: ``convs`` 3 x 3 convolutions to ``channels``; the last one has stride ``stride``."""

    name: str
    channels: int
    convs: int
    stride: int = 1
    dilation: int = 1


ECCV16_BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec("conv1", 64, 2, stride=2),
    BlockSpec("conv2", 128, 2, stride=2),
    BlockSpec("conv3", 256, 3, stride=2),
    BlockSpec("conv4", 512, 3),
    BlockSpec("conv5", 512, 3, dilation=2),
    BlockSpec("conv6", 512, 3, dilation=2),
    BlockSpec("conv7", 512, 3),
)
"""The tapped blocks, shallow -> deep."""
CONV8_CHANNELS = 256
"""Channels of the upsampling block conv8."""


def scale_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1."""
    return max(1, round(channels * width))


def conv_block(in_channels: int, spec: BlockSpec, out_channels: int) -> nn.Sequential:
    """The convolutions + ReLUs of ``spec``, then ``BatchNorm2d(affine=False)``."""
    layers: list[nn.Module] = []
    for index in range(spec.convs):
        stride = spec.stride if index == spec.convs - 1 else 1
        layers += conv_relu(in_channels, out_channels, stride=stride, dilation=spec.dilation)
        in_channels = out_channels
    layers.append(nn.BatchNorm2d(out_channels, affine=False))
    return nn.Sequential(*layers)


def upsample_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """conv8: 4 x 4 stride-2 transposed convolution + ReLU, then two 3 x 3 convolutions + ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1),
        nn.ReLU(inplace=True),
        *conv_relu(out_channels, out_channels),
        *conv_relu(out_channels, out_channels),
    )


class ECCV16(ColorizationNet):
    """Zhang et al.'s colorization network; ``width`` scales every channel count (Q stays 313).

    ``num_outputs`` is Q (logits) for classification, 2 for the L2 regression baseline (ab directly).

    Taps ``conv1``..``conv7`` are the block outputs (after their BatchNorm), at strides 2, 4, 8, 8, 8, 8, 8.
    :meth:`forward` needs H and W to be multiples of 8; :meth:`forward_features` takes any size.
    """

    tap_names = tuple(spec.name for spec in ECCV16_BLOCKS)
    input_multiple = 8

    def __init__(self, width: float = 1.0, init: str = "kaiming", num_outputs: int = Q) -> None:
        super().__init__()
        self.width, self.init = checked_width(width), check_scheme(init)
        channels = 1
        for spec in ECCV16_BLOCKS:
            out_channels = scale_channels(spec.channels, width)
            self.add_module(spec.name, conv_block(channels, spec, out_channels))
            channels = out_channels
        self.conv8 = upsample_block(channels, scale_channels(CONV8_CHANNELS, width))
        self.logits = LogitsConv(scale_channels(CONV8_CHANNELS, width), num_outputs)
        init_weights(self, init)

    def tap_channels(self) -> dict[str, int]:
        return {spec.name: scale_channels(spec.channels, self.width) for spec in ECCV16_BLOCKS}

    def tap_strides(self) -> dict[str, int]:
        strides, stride = {}, 1
        for spec in ECCV16_BLOCKS:
            stride *= spec.stride
            strides[spec.name] = stride
        return strides

    def _predict(self, features: dict[str, Tensor], size: tuple[int, int]) -> Tensor:
        return self.logits(self.conv8(features[self.tap_names[-1]]))
