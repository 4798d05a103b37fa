"""The colorization AlexNet of Zhang, Isola, Efros (ECCV 2016), the network behind the paper's
representation-learning tables.

Layer for layer the training net ``colorization/train_alexnet/train_val.prototxt`` of
richzhang/colorization:

- CaffeNet's convolutions with their groups: conv1 11 x 11 / 4 (pad 5), conv2 5 x 5 (pad 2, 2 groups),
  conv3 3 x 3, conv4 and conv5 3 x 3 with 2 groups; no LRN;
- each convolution and fc layer is followed by BatchNorm *without* scale (``affine=False``), then ReLU;
- max pooling 3 x 3 / 2 (pad 1) after conv1 and conv2; pool5 is 3 x 3 with stride **1** (pad 1);
- fc6 is a 6 x 6 convolution dilated by 2 (pad 5), fc7 a 1 x 1 convolution, both 4096 channels;
- fc8, a 1 x 1 convolution to Q = 313 logits, at 1/16 of the input, is resized bilinearly to the ab
  targets, which are the input's ab subsampled at stride 8 (the prototxt's ``data_ab_ss``: a 1 x 1
  convolution with stride 8, i.e. ``ab[..., ::8, ::8]``; 23 x 23 for the 180 x 180 training crop).

So this network's ``output_stride`` is 8, not the toolkit's default 4: the Lightning module builds its
targets, its prior and its validation images at the network's own stride
(:class:`~selfsup_color.pretrain.module.ColorizationModule` asks ``net.output_stride``), which is what
the prototxt trains on. The logits have ``ceil(H / 8) x ceil(W / 8)`` pixels, the size of
``ab[..., ::8, ::8]``, so any input size works.

Differences, none of which changes the functions the network can represent:

- the input is ``(L - 50) / 100`` (the toolkit's :func:`~.normalize.normalize_lightness`) where the
  prototxt feeds ``L - 50``; a factor on the input is absorbed by conv1's weights and bias;
- pooling rounds its output size down (PyTorch) where Caffe rounds up. The sizes agree at the 180 crop
  (45 -> 23 -> 12) and whenever ``ceil(H/4)`` and ``ceil(H/8)`` are odd; otherwise Caffe's pools add one
  row and column of padding. Rounding down keeps every tap at exactly ``ceil(H / stride)``;
- Caffe's default filler for conv1..conv5 is zero (the authors initialise with ``magic_init``,
  ``run_init.sh``); here ``init`` chooses the scheme, as for every network of the toolkit.

``width`` scales every channel count, rounded to a multiple of the 2 groups (Q stays 313):
58,127,353 parameters at ``width=1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ..core.bins import Q
from .base import ColorizationNet
from .init import check_scheme, checked_width, init_weights
from .layers import LogitsConv

GROUPS = 2
"""CaffeNet's two groups (conv2, conv4, conv5): every channel count is a multiple of it."""


@dataclass(frozen=True)
class LayerSpec:
    """One tap of the prototxt: an optional 3 x 3 max pool (pad 1), then a convolution + BatchNorm + ReLU.

    ``pool_stride`` is the stride of the max pool in front (None: no pool); ``channels`` 0 means the tap
    is the pool alone (pool5).
    """

    name: str
    channels: int = 0
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    pool_stride: int | None = None


ALEXNET_LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("conv1", 96, 11, stride=4, padding=5),
    LayerSpec("conv2", 256, 5, padding=2, groups=2, pool_stride=2),  # pool1 in front
    LayerSpec("conv3", 384, 3, padding=1, pool_stride=2),  # pool2 in front
    LayerSpec("conv4", 384, 3, padding=1, groups=2),
    LayerSpec("conv5", 256, 3, padding=1, groups=2),
    LayerSpec("pool5", pool_stride=1),
    LayerSpec("fc6", 4096, 6, padding=5, dilation=2),
    LayerSpec("fc7", 4096, 1),
)
"""The tapped layers of ``train_alexnet/train_val.prototxt``, shallow -> deep."""


def scale_grouped(channels: int, width: float) -> int:
    """``channels * width`` rounded to a multiple of :data:`GROUPS`, at least :data:`GROUPS`."""
    return max(GROUPS, round(channels * width / GROUPS) * GROUPS)


def layer_block(in_channels: int, spec: LayerSpec, out_channels: int) -> nn.Sequential:
    """The max pool of ``spec`` (if any), then its convolution, ``BatchNorm2d(affine=False)`` and ReLU."""
    layers: list[nn.Module] = []
    if spec.pool_stride is not None:
        layers.append(nn.MaxPool2d(3, stride=spec.pool_stride, padding=1))
    if spec.channels:
        conv = nn.Conv2d(
            in_channels,
            out_channels,
            spec.kernel,
            stride=spec.stride,
            padding=spec.padding,
            dilation=spec.dilation,
            groups=spec.groups,
        )
        layers += [conv, nn.BatchNorm2d(out_channels, affine=False), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class AlexNet(ColorizationNet):
    """The paper's colorization AlexNet; ``width`` scales every channel count (Q stays 313).

    ``num_outputs`` is Q (logits) for classification, 2 for the L2 regression baseline. Taps
    ``conv1``..``conv5``, ``pool5``, ``fc6``, ``fc7`` (after their BatchNorm and ReLU, as the prototxt's
    in-place ReLUs leave them) at strides 4, 8, 16, 16, 16, 16, 16, 16; each has ``ceil(H / stride)``
    rows. The logits are fc8's, resized bilinearly to ``ceil(H / 8) x ceil(W / 8)``.
    """

    tap_names = tuple(spec.name for spec in ALEXNET_LAYERS)
    output_stride = 8
    input_multiple = 1

    def __init__(self, width: float = 1.0, init: str = "kaiming", num_outputs: int = Q) -> None:
        super().__init__()
        self.width, self.init = checked_width(width), check_scheme(init)
        self._channels: dict[str, int] = {}
        self._strides: dict[str, int] = {}
        channels, stride = 1, 1
        for spec in ALEXNET_LAYERS:
            out_channels = scale_grouped(spec.channels, width) if spec.channels else channels
            self.add_module(spec.name, layer_block(channels, spec, out_channels))
            stride *= spec.stride * (spec.pool_stride or 1)
            self._channels[spec.name], self._strides[spec.name] = out_channels, stride
            channels = out_channels
        self.fc8 = LogitsConv(channels, num_outputs)
        init_weights(self, init)

    def tap_channels(self) -> dict[str, int]:
        return dict(self._channels)

    def tap_strides(self) -> dict[str, int]:
        return dict(self._strides)

    def _predict(self, features: dict[str, Tensor], size: tuple[int, int]) -> Tensor:
        logits = self.fc8(features[self.tap_names[-1]])
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
