"""A light DeepLabv3+-style decoder from a backbone's deepest and stride-4 features to the net's outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.bins import Q
from .layers import LogitsConv, conv_bn_relu


def resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize to ``size`` (a no-op when already there)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class FusionHead(nn.Module):
    """Deep feature -> 1 x 1 reduce -> upsample, concat a 1 x 1-reduced skip, two 3 x 3 convs, 1 x 1 logits.

    Each conv is conv + BatchNorm + ReLU. The skip (the stride-4 feature) is reduced to
    ``channels // 4`` channels (DeepLabv3+ uses 48 against 256); without one the deep feature is just
    upsampled to the output size.
    """

    def __init__(
        self, deep_channels: int, skip_channels: int | None, channels: int = 256, num_outputs: int = Q
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"head_channels must be at least 1, got {channels}")
        self.reduce_deep = conv_bn_relu(deep_channels, channels, 1)
        skip_out = 0 if skip_channels is None else max(1, channels // 4)
        self.reduce_skip = conv_bn_relu(skip_channels, skip_out, 1) if skip_channels is not None else None
        fused = channels + skip_out
        self.fuse = nn.Sequential(conv_bn_relu(fused, channels, 3), conv_bn_relu(channels, channels, 3))
        self.logits = LogitsConv(channels, num_outputs)

    def forward(self, deep: Tensor, skip: Tensor | None, size: tuple[int, int]) -> Tensor:
        """Logits of size ``size`` from the deep feature and the optional skip feature."""
        x = resize(self.reduce_deep(deep), size)
        if self.reduce_skip is not None:
            if skip is None:
                raise ValueError("this head was built with a skip connection: pass the skip feature")
            x = torch.cat([x, resize(self.reduce_skip(skip), size)], dim=1)
        return self.logits(self.fuse(x))
