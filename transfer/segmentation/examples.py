"""Segmentation examples: the image, the predicted mask and the true mask side by side."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.loggers import Logger
from torch import Tensor
from torchvision.utils import draw_segmentation_masks

from selfsup_color.viz import tile

from ..examples import EXAMPLE_IMAGES, draw_examples
from .data import IGNORE_INDEX, SegmentationFiles
from .model import SegmentationNet

PANEL_GAP = 4
"""White pixels around and between the three panels."""


def class_colours(count: int) -> Tensor:
    """``count x 3`` uint8 colours: PASCAL VOC's colour map from its entry 1 (entry 0 is black).

    Entry ``n`` spreads the bits of ``n`` over the channels, most significant first: bit 3j of ``n``
    goes to red bit 7 - j, bit 3j + 1 to green, bit 3j + 2 to blue.
    """
    index = torch.arange(1, count + 1)
    colours = torch.zeros(count, 3, dtype=torch.int64)
    for j in range(8):
        for channel in range(3):
            colours[:, channel] |= ((index >> (3 * j + channel)) & 1) << (7 - j)
    return colours.to(torch.uint8)


def overlay_mask(image: Tensor, mask: Tensor, colours: Tensor, alpha: float = 0.5) -> Tensor:
    """``image`` (``3 x H x W`` uint8) with each class of ``mask`` (``H x W``) blended in its colour.

    Pixels of :data:`~.data.IGNORE_INDEX` keep the image's colour.
    """
    classes = [int(k) for k in mask.unique() if int(k) != IGNORE_INDEX]
    if not classes:
        return image.clone()
    masks = mask[None] == torch.tensor(classes)[:, None, None]
    palette = [tuple(int(c) for c in colours[k]) for k in classes]
    return draw_segmentation_masks(image, masks, alpha=alpha, colors=palette)


def draw_segmentation(image: Tensor, predicted: Tensor, truth: Tensor, colours: Tensor) -> Tensor:
    """Three panels, white-framed: ``image``, the ``predicted`` mask on it, the ``truth`` mask on it."""
    panels = [image, overlay_mask(image, predicted, colours), overlay_mask(image, truth, colours)]
    return tile(torch.stack(panels), columns=3, padding=PANEL_GAP, fill=255)


def segmentation_examples(
    net: SegmentationNet,
    dataset: SegmentationFiles,
    folder: Path,
    logger: Logger | None = None,
    count: int = EXAMPLE_IMAGES,
) -> list[Path]:
    """Draw the net's masks for the first ``count`` images of ``dataset``; write and log them.

    Writes ``folder/segmentation_<stem>.png`` (see :func:`draw_segmentation`) on global rank zero and
    returns the paths (none on other ranks).
    """
    device = next(net.parameters()).device
    colours = class_colours(dataset.labels.num_classes)

    def draw(index: int) -> tuple[str, Tensor]:
        image, truth = dataset[index]
        predicted = net(image[None].to(device)).argmax(1)[0].cpu()
        picture = draw_segmentation(image, predicted, truth, colours)
        return f"segmentation_{dataset.pairs[index].stem}", picture

    return draw_examples(net, min(count, len(dataset)), draw, folder, logger, "segmentation/examples")
