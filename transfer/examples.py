"""Example predictions of a transfer run: pictures saved as PNG beside the results and logged to wandb.

:mod:`transfer.detection.examples` and :mod:`transfer.segmentation.examples` draw them on a few
validation images; this module writes and logs them, the same way for both tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor, nn

from selfsup_color.viz import save_png

EXAMPLE_IMAGES = 4
"""How many validation images a run draws its predictions on."""


def save_examples(
    pictures: Mapping[str, Tensor], folder: Path, logger: Logger | None = None, key: str = "examples"
) -> list[Path]:
    """Write each ``3 x H x W`` uint8 picture as ``folder/<name>.png``; log them to wandb under ``key``.

    Other loggers get nothing (the PNGs are on disk and in the markdown report). Returns the paths,
    in the order of ``pictures``.
    """
    paths = [save_png(picture, Path(folder) / f"{name}.png") for name, picture in pictures.items()]
    if isinstance(logger, WandbLogger) and paths:
        logger.log_image(key, [str(p) for p in paths], caption=list(pictures))
    return paths


def draw_examples(
    model: nn.Module,
    count: int,
    draw: Callable[[int], tuple[str, Tensor]],
    folder: Path,
    logger: Logger | None,
    key: str,
) -> list[Path]:
    """On global rank zero, ``draw(i)`` -> (name, picture) for ``i < count`` with ``model`` in eval mode
    and no gradients (its mode restored after), then :func:`save_examples`. Other ranks: nothing."""
    if rank_zero_only.rank != 0:
        return []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            pictures = dict(draw(index) for index in range(count))
    finally:
        model.train(was_training)
    return save_examples(pictures, folder, logger, key)
