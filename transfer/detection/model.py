"""Faster R-CNN on a :class:`~transfer.encoder.LightnessEncoder` (torchvision's implementation).

Two heads:

- ``"fpn"``: a :class:`~torchvision.ops.FeaturePyramidNetwork` over several taps (default: for each
  stride >= 4 the deepest tap of that stride), topped up with max-pooled levels until stride 64, one
  anchor size per level (8 x its stride: 32..512 on strides 4..64) and RoIAlign over the tap levels.
- ``"c4"``: one feature map (default: the deepest tap of stride <= 16), single-level anchors of five
  sizes and a two-layer MLP box head. This is the "C4" variant for generic encoders: Detectron's C4
  runs ResNet's res5 stage on each RoI, which a generic encoder (e.g. ECCV16) does not have.

The detector takes [0, 1] RGB floats: its transform only resizes and pads (``image_mean`` 0,
``image_std`` 1), and the encoder computes CIE lightness itself, so the network sees L only. The
encoder's frozen parameters (``build_encoder(..., freeze_at=...)``) and those the taps do not use
(its colorization head) get no gradients; everything else (the encoder's unfrozen part up to the
taps, FPN, RPN, box head) trains. With ``norm_eval`` the encoder's
BatchNorm layers keep their running statistics (detection batches are too small to estimate them).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock

from ..encoder import LightnessEncoder

HEADS = ("fpn", "c4")
TOP_STRIDE = 64
"""FPN levels are added by max pooling until this stride (P6 of a ResNet FPN)."""
ASPECT_RATIOS = (0.5, 1.0, 2.0)
C4_ANCHOR_SIZES = (32, 64, 128, 256, 512)


def default_taps(encoder: LightnessEncoder, head: str) -> list[str]:
    """The taps a head reads by default (see the module docstring)."""
    strides = encoder.tap_strides()
    if head == "c4":
        eligible = [t for t in encoder.tap_names if strides[t] <= 16]
        if not eligible:
            raise ValueError(f"no tap of stride <= 16 for the c4 head (strides {strides}); pass taps=[...]")
        return [eligible[-1]]
    deepest = {strides[t]: t for t in encoder.tap_names if strides[t] >= 4}  # later (deeper) taps win
    if not deepest:
        raise ValueError(f"no tap of stride >= 4 for the fpn head (strides {strides}); pass taps=[...]")
    return [deepest[s] for s in sorted(deepest)]


class PoolLevels(ExtraFPNBlock):
    """Extra FPN levels: the coarsest level max-pooled by 2, ``len(names)`` times (``LastLevelMaxPool``)."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        self.names = list(names)

    def forward(
        self, results: list[Tensor], x: list[Tensor], names: list[str]
    ) -> tuple[list[Tensor], list[str]]:
        for name in self.names:
            results.append(F.max_pool2d(results[-1], kernel_size=1, stride=2))
            names.append(name)
        return results, names


class EncoderBackbone(nn.Module):
    """The encoder's ``taps`` as Faster R-CNN's backbone: an ordered dict of feature maps.

    Args:
        encoder: the (partly) frozen encoder.
        taps: the taps to read, shallow to deep.
        fpn_channels: put an FPN of this width on top (None: the raw tap, which must be one).
        norm_eval: keep the encoder's BatchNorm layers in eval mode while training.
    """

    def __init__(
        self, encoder: LightnessEncoder, taps: Sequence[str], fpn_channels: int | None, norm_eval: bool = True
    ) -> None:
        super().__init__()
        self.encoder, self.taps, self.norm_eval = encoder, list(taps), norm_eval
        encoder.freeze_beyond(self.taps)
        channels, strides = encoder.tap_channels(), encoder.tap_strides()
        self.fpn: FeaturePyramidNetwork | None = None
        self.level_names = list(self.taps)
        if fpn_channels is None:
            if len(self.taps) != 1:
                raise ValueError(f"a backbone without FPN reads one tap, got {self.taps}")
            self.out_channels = channels[self.taps[0]]
            return
        coarsest = strides[self.taps[-1]]
        extra = [
            f"pool{coarsest * 2**k}" for k in range(1, 1 + max(1, (TOP_STRIDE // coarsest).bit_length() - 1))
        ]
        self.fpn = FeaturePyramidNetwork([channels[t] for t in self.taps], fpn_channels, PoolLevels(extra))
        self.level_names += extra
        self.out_channels = fpn_channels

    def train(self, mode: bool = True) -> EncoderBackbone:
        super().train(mode)
        if self.norm_eval:
            for module in self.encoder.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, images: Tensor) -> OrderedDict[str, Tensor]:
        features = self.encoder(images, self.taps)
        ordered = OrderedDict((tap, features[tap]) for tap in self.taps)
        return self.fpn(ordered) if self.fpn is not None else ordered


def build_detector(
    encoder: LightnessEncoder,
    num_classes: int,
    head: Literal["fpn", "c4"] = "fpn",
    taps: Sequence[str] | None = None,
    min_size: int = 800,
    max_size: int = 1333,
    fpn_channels: int = 256,
    norm_eval: bool = True,
    **options: Any,
) -> FasterRCNN:
    """Faster R-CNN with ``encoder`` as its backbone.

    Args:
        encoder: the encoder, frozen as built (``build_encoder(config, freeze_at=...)``).
        num_classes: K object classes (labels 1..K); the predictor adds the background class 0.
        head: ``"fpn"`` or ``"c4"`` (module docstring).
        taps: the taps to read (default :func:`default_taps`); ``"c4"`` reads exactly one.
        min_size, max_size: the detector's own resize (shorter side; cap on the longer side).
        fpn_channels: width of the FPN (``"fpn"`` only).
        norm_eval: keep the encoder's BatchNorm statistics frozen.
        options: further :class:`~torchvision.models.detection.FasterRCNN` arguments (RPN and box
            sampling sizes, score threshold, ...).
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1 (object classes, background excluded), got {num_classes}")
    taps = encoder.net.select_taps(taps) if taps is not None else default_taps(encoder, head)
    if not taps:
        raise ValueError("taps must name at least one tap")
    if head == "c4" and len(taps) != 1:
        raise ValueError(f"the c4 head reads one tap, got taps={taps}")
    backbone = EncoderBackbone(encoder, taps, fpn_channels if head == "fpn" else None, norm_eval)
    if head == "fpn":
        strides = [encoder.tap_strides()[t] for t in taps]
        strides += [strides[-1] * 2**k for k in range(1, 1 + len(backbone.level_names) - len(taps))]
        anchors = AnchorGenerator(tuple((8 * s,) for s in strides), (ASPECT_RATIOS,) * len(strides))
        box_head = None  # torchvision's TwoMLPHead(out_channels * 7 * 7, 1024)
    else:
        anchors = AnchorGenerator((C4_ANCHOR_SIZES,), (ASPECT_RATIOS,))
        box_head = TwoMLPHead(backbone.out_channels * 7 * 7, 1024)
    pooler = MultiScaleRoIAlign(list(taps), output_size=7, sampling_ratio=2)
    return FasterRCNN(
        backbone,
        num_classes=num_classes + 1,
        min_size=min_size,
        max_size=max_size,
        image_mean=[0.0, 0.0, 0.0],
        image_std=[1.0, 1.0, 1.0],
        rpn_anchor_generator=anchors,
        box_roi_pool=pooler,
        box_head=box_head,
        **options,
    )
