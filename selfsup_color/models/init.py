"""Weight initialisation schemes for the colorization networks.

The authors traced PyTorch convergence failures (desaturated "sepia" outputs) to initialisation, so
the scheme is an explicit option of every network:

``"kaiming"`` (default)
    He et al. normal init for ReLU layers: ``std = sqrt(2 / fan_in)``, zero bias. ``fan_in`` is the
    number of inputs feeding one output (:func:`fan_in`); for a transposed convolution that is
    ``in_channels / groups * prod(kernel / stride)``, not PyTorch's ``out_channels * prod(kernel)``.
``"xavier"``
    Glorot uniform (:func:`torch.nn.init.xavier_uniform_`, gain 1):
    ``std = sqrt(2 / (fan_in + fan_out))`` with PyTorch's fans, zero bias.
``"torch"``
    Leave every weight as constructed (PyTorch's defaults; timm's own init inside timm backbones).

Under ``"kaiming"`` and ``"xavier"`` the logits layer (:class:`~.layers.LogitsConv`) gets
``normal(0, 1e-3)`` weights and zero bias, so the initial predictions are near-uniform over the Q bins.
Convolutions and linear layers are initialised; normalisation layers keep their defaults.
"""

from __future__ import annotations

import math

from torch import nn
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd

from .layers import LogitsConv

INIT_SCHEMES: tuple[str, ...] = ("kaiming", "xavier", "torch")
"""The valid values of ``init``."""
LOGITS_STD = 1e-3
"""Standard deviation of the logits layer's weights (``"kaiming"`` and ``"xavier"``)."""


def fan_in(layer: _ConvNd | nn.Linear) -> float:
    """The number of inputs that feed one output unit of ``layer``."""
    if isinstance(layer, nn.Linear):
        return float(layer.in_features)
    kernel = math.prod(layer.kernel_size)
    if isinstance(layer, _ConvTransposeNd):
        return layer.in_channels / layer.groups * kernel / math.prod(layer.stride)
    return layer.in_channels / layer.groups * kernel


def check_scheme(scheme: str) -> str:
    """Return ``scheme`` if valid, else raise a ValueError listing the valid ones."""
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; valid schemes: {', '.join(INIT_SCHEMES)}")
    return scheme


def init_weights(module: nn.Module, scheme: str = "kaiming") -> nn.Module:
    """Initialise every convolution and linear layer inside ``module`` in place; returns ``module``."""
    if check_scheme(scheme) == "torch":
        return module
    for layer in module.modules():
        if isinstance(layer, LogitsConv):
            nn.init.normal_(layer.weight, std=LOGITS_STD)
        elif isinstance(layer, _ConvNd | nn.Linear):
            if scheme == "kaiming":
                nn.init.normal_(layer.weight, std=math.sqrt(2.0 / fan_in(layer)))
            else:
                nn.init.xavier_uniform_(layer.weight)
        else:
            continue
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return module


def checked_width(width: float) -> float:
    """A channel-width multiplier, checked positive (ValueError otherwise)."""
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    return width
