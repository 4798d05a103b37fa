"""Build a colorization network by architecture name, with its options checked against its signature."""

from __future__ import annotations

import inspect
from typing import Any

from .alexnet import AlexNet
from .base import ColorizationNet
from .eccv16 import ECCV16
from .timm_colorizer import TimmColorizer

ARCHITECTURES: dict[str, type[ColorizationNet]] = {
    "eccv16": ECCV16,
    "alexnet": AlexNet,
    "timm": TimmColorizer,
}
"""Architecture name -> network class."""


def architecture_options(arch: str) -> tuple[str, ...]:
    """The option names ``arch`` accepts (its constructor's keyword parameters)."""
    parameters = inspect.signature(architecture(arch).__init__).parameters
    return tuple(name for name in parameters if name != "self")


def architecture(arch: str) -> type[ColorizationNet]:
    """The class of ``arch``; ValueError listing the valid names if unknown."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; valid architectures: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


def build_model(arch: str, **options: Any) -> ColorizationNet:
    """A new, randomly initialised ``arch`` network; TypeError naming any option it does not take."""
    valid = architecture_options(arch)
    unknown = sorted(set(options).difference(valid))
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for architecture {arch!r}; valid options: {', '.join(valid)}"
        )
    return architecture(arch)(**options)
