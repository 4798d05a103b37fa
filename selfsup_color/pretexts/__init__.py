"""Colorization pretext tasks, each one object: output channels, loss, decoding, rebalancing.

``build_pretext(name)`` gives the pretext behind ``--model.loss name``: ``classification`` (the
paper's) or ``regression`` (the L2 baseline). A new pretext is one new file in this package: a
:class:`Pretext` subclass decorated with :func:`register_pretext`. Every module here is imported
with the package, so the file needs no import line elsewhere.
"""

import importlib
import pkgutil

from .base import PRETEXTS, Pretext, build_pretext, pretext_for_outputs, register_pretext
from .classification import ClassificationPretext
from .regression import RegressionPretext


def import_pretext_files() -> None:
    """Import every module of this package, so that each pretext file registers its pretexts."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


import_pretext_files()

__all__ = [
    "PRETEXTS",
    "ClassificationPretext",
    "Pretext",
    "RegressionPretext",
    "build_pretext",
    "import_pretext_files",
    "pretext_for_outputs",
    "register_pretext",
]
