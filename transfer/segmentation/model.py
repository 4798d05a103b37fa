"""An FCN-style segmentation head on the feature taps of a :class:`~transfer.encoder.LightnessEncoder`.

Each chosen tap is projected by a 1x1 convolution (+ BatchNorm) to a common width and bilinearly
upsampled to the finest chosen stride; the maps are summed (``"sum"``: FCN-8s-like skip fusion) or
concatenated (``"concat"``: a hypercolumn); ReLU, dropout and a 1x1 classifier give K class scores,
which are bilinearly upsampled to the input size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..encoder import LightnessEncoder

Fusion = Literal["sum", "concat"]


def default_taps(strides: Mapping[str, int]) -> list[str]:
    """The deepest tap of each distinct stride, shallow -> deep (``strides`` ordered shallow -> deep)."""
    deepest = {stride: name for name, stride in strides.items()}
    return [name for name in strides if deepest[strides[name]] == name]


class FCNHead(nn.Module):
    """Feature maps of several strides -> class logits at the finest of those strides.

    Args:
        channels: channels of each tap, in the order the maps are passed.
        num_classes: K.
        fusion: ``"sum"`` or ``"concat"`` of the projected maps.
        width: channels of each projection.
        dropout: before the classifier.
    """

    def __init__(
        self,
        channels: Mapping[str, int],
        num_classes: int,
        fusion: Fusion = "sum",
        width: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if fusion not in ("sum", "concat"):
            raise ValueError(f"fusion must be 'sum' or 'concat', got {fusion!r}")
        self.fusion = fusion
        self.project = nn.ModuleDict(
            {
                name: nn.Sequential(nn.Conv2d(c, width, 1, bias=False), nn.BatchNorm2d(width))
                for name, c in channels.items()
            }
        )
        fused = width * (len(channels) if fusion == "concat" else 1)
        self.classify = nn.Sequential(nn.ReLU(), nn.Dropout2d(dropout), nn.Conv2d(fused, num_classes, 1))

    def forward(self, features: Mapping[str, Tensor]) -> Tensor:
        size = max((f.shape[-2:] for f in features.values()), key=lambda s: s[0] * s[1])
        maps = [
            F.interpolate(self.project[name](x), size=size, mode="bilinear", align_corners=False)
            for name, x in features.items()
        ]
        fused = torch.cat(maps, 1) if self.fusion == "concat" else torch.stack(maps).sum(0)
        return self.classify(fused)


class SegmentationNet(nn.Module):
    """Encoder (L only) + :class:`FCNHead`: RGB ``N x 3 x H x W`` in, logits ``N x K x H x W`` out.

    Args:
        encoder: the (possibly frozen) encoder.
        num_classes: K.
        taps: the encoder taps fed to the head; None: :func:`default_taps`.
        fusion, width, dropout: see :class:`FCNHead`.
    """

    def __init__(
        self,
        encoder: LightnessEncoder,
        num_classes: int,
        taps: Sequence[str] | None = None,
        fusion: Fusion = "sum",
        width: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.taps = tuple(
            encoder.net.select_taps(taps) if taps is not None else default_taps(encoder.tap_strides())
        )
        if not self.taps:
            raise ValueError("model.taps is empty: name at least one encoder tap")
        channels = encoder.tap_channels()
        self.head = FCNHead({t: channels[t] for t in self.taps}, num_classes, fusion, width, dropout)
        encoder.freeze_beyond(self.taps)

    def forward(self, rgb: Tensor) -> Tensor:
        features = self.encoder(rgb, self.taps)
        logits = self.head(features)
        return F.interpolate(logits, size=rgb.shape[-2:], mode="bilinear", align_corners=False)
