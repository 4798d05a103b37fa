"""Colorization networks: the ECCV 2016 network, its AlexNet and timm backbones, behind one interface.

``build_model(arch, **options)`` builds any of :data:`ARCHITECTURES`. Every network is a
:class:`ColorizationNet`: CIE lightness L in [0, 100] in (normalised inside as ``(L - 50) / 100``),
Q = 313 logits at 1/``output_stride`` resolution out (4; 8 for AlexNet), and named feature taps for
transfer learning (:class:`FeatureEncoder`).
"""

from .alexnet import ALEXNET_LAYERS, AlexNet, LayerSpec
from .base import ColorizationNet, FeatureEncoder
from .eccv16 import ECCV16, ECCV16_BLOCKS, BlockSpec
from .head import FusionHead
from .init import INIT_SCHEMES, LOGITS_STD, init_weights
from .layers import LogitsConv
from .normalize import normalize_lightness
from .registry import ARCHITECTURES, architecture_options, build_model
from .timm_colorizer import BACKBONE_OUTPUT_STRIDES, TimmColorizer

__all__ = [
    "ALEXNET_LAYERS",
    "ARCHITECTURES",
    "BACKBONE_OUTPUT_STRIDES",
    "ECCV16",
    "ECCV16_BLOCKS",
    "INIT_SCHEMES",
    "LOGITS_STD",
    "AlexNet",
    "BlockSpec",
    "ColorizationNet",
    "FeatureEncoder",
    "FusionHead",
    "LayerSpec",
    "LogitsConv",
    "TimmColorizer",
    "architecture_options",
    "build_model",
    "init_weights",
    "normalize_lightness",
]
