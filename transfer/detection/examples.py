"""Detection examples: ground-truth and predicted boxes drawn on validation images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from lightning.pytorch.loggers import Logger
from torch import Tensor
from torchvision.models.detection import FasterRCNN
from torchvision.utils import draw_bounding_boxes

from ..examples import EXAMPLE_IMAGES, draw_examples
from .data import DetectionDataset
from .module import as_unit_float

TRUTH_COLOUR = (0, 200, 0)
PREDICTION_COLOUR = (255, 40, 40)


def _label(label: int, class_names: Sequence[str]) -> str:
    """The name of detection label ``label`` (1..K), or the number when names are unknown."""
    return class_names[label - 1] if 0 < label <= len(class_names) else str(label)


def draw_detections(
    image: Tensor,
    prediction: Mapping[str, Tensor],
    truth: Mapping[str, Tensor],
    class_names: Sequence[str] = (),
    score_thresh: float = 0.3,
    max_boxes: int = 20,
) -> Tensor:
    """``image`` (``3 x H x W`` uint8) with its boxes drawn: the truth green, the predictions red.

    Ground-truth boxes are labelled with their class; predicted ones (the ``max_boxes`` best scoring
    at least ``score_thresh``) with their class and score. Boxes are ``xyxy`` pixels, labels 1..K.
    """
    out = image
    if len(truth["boxes"]):
        names = [_label(int(k), class_names) for k in truth["labels"]]
        out = draw_bounding_boxes(out, truth["boxes"], names, colors=TRUTH_COLOUR, width=2)
    scores = prediction["scores"]
    keep = (scores >= score_thresh).nonzero().flatten()
    keep = keep[scores[keep].argsort(descending=True)[:max_boxes]]
    if len(keep):
        names = [f"{_label(int(prediction['labels'][i]), class_names)} {float(scores[i]):.2f}" for i in keep]
        out = draw_bounding_boxes(out, prediction["boxes"][keep], names, colors=PREDICTION_COLOUR, width=2)
    return out


def detection_examples(
    detector: FasterRCNN,
    dataset: DetectionDataset,
    folder: Path,
    logger: Logger | None = None,
    count: int = EXAMPLE_IMAGES,
    score_thresh: float = 0.3,
) -> list[Path]:
    """Draw the detector's boxes on the first ``count`` images of ``dataset``; write and log them.

    Writes ``folder/detection_<image id>.png`` (see :func:`draw_detections`) on global rank zero and
    returns the paths (none on other ranks).
    """
    device = next(detector.parameters()).device

    def draw(index: int) -> tuple[str, Tensor]:
        image, truth = dataset[index]
        (prediction,) = detector(as_unit_float([image.to(device)]))
        prediction = {key: value.cpu() for key, value in prediction.items()}
        picture = draw_detections(image, prediction, truth, dataset.class_names, score_thresh)
        return f"detection_{truth['image_id']}", picture

    return draw_examples(detector, min(count, len(dataset)), draw, folder, logger, "detection/examples")
