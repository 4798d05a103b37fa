"""Crop geometry: where a resize-then-crop of an image lands, in the resized image's pixels.

The reference recipe resizes the whole image so that its shorter side is ``resize`` (torchvision's
``Resize(resize)``, same rounding), then takes a ``size`` x ``size`` crop: at a uniformly random
integer position and flipped with probability 1/2 for training (``RandomCrop`` +
``RandomHorizontalFlip``), or centred for evaluation (``CenterCrop``). A :class:`Crop` records that
outcome, and :meth:`Crop.box` maps it onto the original image (or a reduced decode of it), so that
only the box need be resampled: the picture and the random distribution are the reference's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np


def check_sizes(resize: int, crop: int, names: str = "resize, crop") -> None:
    """Raise ValueError unless ``1 <= crop <= resize`` (``names`` says what they were called)."""
    for value in (resize, crop):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{names} must be positive integers, got {resize!r}, {crop!r}")
    if crop > resize:
        raise ValueError(f"{names} = {resize}, {crop}: the crop must fit in the resized image (<= resize)")


def resized_size(width: int, height: int, resize: int) -> tuple[int, int]:
    """(width, height) after scaling the shorter side to ``resize``, as torchvision rounds it."""
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(resize * long / short)
    return (resize, new_long) if width <= height else (new_long, resize)


@dataclass(frozen=True)
class Crop:
    """A ``size`` x ``size`` crop at (``left``, ``top``) of the image resized to ``resized``."""

    resized: tuple[int, int]
    left: int
    top: int
    size: int
    flip: bool = False

    def box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The crop as a (left, top, right, bottom) box in an image of ``width`` x ``height``.

        That image shows the same picture at any scale: the original, or a reduced JPEG decode.
        """
        sx, sy = width / self.resized[0], height / self.resized[1]
        right = min(width, (self.left + self.size) * sx)  # no float overshoot past the edge
        bottom = min(height, (self.top + self.size) * sy)
        return (self.left * sx, self.top * sy, right, bottom)


def random_crop(width: int, height: int, resize: int, size: int, rng: random.Random) -> Crop:
    """A uniformly placed crop, flipped with probability 1/2: RandomCrop + RandomHorizontalFlip."""
    w, h = resized_size(width, height, resize)
    top = rng.randrange(h - size + 1)
    left = rng.randrange(w - size + 1)
    return Crop((w, h), left, top, size, flip=rng.random() < 0.5)


def centre_crop(width: int, height: int, resize: int, size: int) -> Crop:
    """The centred crop, rounded as torchvision's ``CenterCrop``."""
    w, h = resized_size(width, height, resize)
    return Crop((w, h), round((w - size) / 2.0), round((h - size) / 2.0), size)
