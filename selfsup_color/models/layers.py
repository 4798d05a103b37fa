"""Small building blocks shared by the networks."""

from __future__ import annotations

from torch import nn

from ..core.bins import Q


class LogitsConv(nn.Conv2d):
    """The final 1 x 1 convolution to the Q colour classes (with bias).

    A class of its own so that :func:`~selfsup_color.models.init.init_weights` can find it and give it
    a small initialisation (near-uniform initial predictions).
    """

    def __init__(self, in_channels: int, classes: int = Q) -> None:
        super().__init__(in_channels, classes, kernel_size=1)


def conv_relu(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    """A 3 x 3 convolution with bias, 'same' padding for its dilation, and an in-place ReLU."""
    conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation)
    return [conv, nn.ReLU(inplace=True)]


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """Convolution (no bias, 'same' padding), BatchNorm and in-place ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )
