"""Colorization pretext tasks, each one object: output channels, loss, decoding, rebalancing, stride.

``build_pretext(name)`` gives the pretext behind ``--model.loss name``: ``classification`` (the
paper's) or ``regression`` (the L2 baseline). A new pretext is one file: a :class:`Pretext` subclass
decorated with :func:`register_pretext`, imported before the module is built.
"""

from .base import PRETEXTS, Pretext, build_pretext, pretext_for_outputs, register_pretext
from .classification import ClassificationPretext
from .regression import RegressionPretext

__all__ = [
    "PRETEXTS",
    "ClassificationPretext",
    "Pretext",
    "RegressionPretext",
    "build_pretext",
    "pretext_for_outputs",
    "register_pretext",
]
