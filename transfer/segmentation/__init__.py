"""Semantic segmentation transfer: an FCN-style head on a colorization encoder's taps (L only).

:func:`run_segmentation` trains and scores one encoder; :mod:`.data` reads COCO-style mask folders and
PASCAL VOC, :mod:`.metrics` holds the confusion-matrix maths, :mod:`.model` the head.
"""

from .run import (
    SegmentationConfig,
    SegmentationDataConfig,
    SegmentationModelConfig,
    run_segmentation,
)

__all__ = ["SegmentationConfig", "SegmentationDataConfig", "SegmentationModelConfig", "run_segmentation"]
