"""Segmentation scores from a confusion matrix (rows: true class, columns: predicted class).

mIoU convention: the mean of per-class IoU ``TP / (TP + FP + FN)`` over the classes that occur in the
target *or* the prediction (``TP + FP + FN > 0``). Classes absent from both have an undefined 0/0 IoU
and are left out rather than counted as 0 or 1; on a full benchmark such as VOC val every class occurs
in the target, so this equals the usual mean over all classes. A class that is predicted but never
present counts with IoU 0. Pixels whose target is ``ignore_index`` count nowhere.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric

from .data import IGNORE_INDEX


def confusion_matrix(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """``num_classes`` x ``num_classes`` int64 counts: entry (t, p) = pixels of class t predicted as p.

    ``pred`` and ``target`` are integer tensors of the same shape; target pixels equal to
    ``ignore_index`` are skipped. Other values outside ``0..num_classes-1`` raise ValueError.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    keep = target != ignore_index
    pred, target = pred[keep].long(), target[keep].long()
    for name, values in (("pred", pred), ("target", target)):
        if values.numel() and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"{name} holds values outside 0..{num_classes - 1} (other than ignore {ignore_index}): "
                f"{values.min().item()}..{values.max().item()}"
            )
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def class_iou(confusion: Tensor) -> Tensor:
    """Per-class IoU (float64); NaN for classes absent from both target and prediction."""
    confusion = confusion.double()
    tp = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))


def mean_iou(confusion: Tensor) -> float:
    """Mean IoU over the classes present in target or prediction (see the module); NaN if none."""
    iou = class_iou(confusion)
    present = ~iou.isnan()
    return float(iou[present].mean()) if present.any() else math.nan


def pixel_accuracy(confusion: Tensor) -> float:
    """Correct pixels over counted (non-ignored) pixels; NaN when nothing was counted."""
    total = confusion.sum()
    return float(confusion.diagonal().sum().double() / total) if total > 0 else math.nan


class ConfusionMatrix(Metric):
    """Summed confusion matrix of argmax predictions: the sum is reduced over processes (DDP-safe)."""

    full_state_update = False
    confusion: Tensor

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.num_classes, self.ignore_index = num_classes, ignore_index
        zeros = torch.zeros(num_classes, num_classes, dtype=torch.long)
        self.add_state("confusion", default=zeros, dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch: ``pred`` class indices (or N x K x H x W logits) and ``target`` indices."""
        if pred.dim() == target.dim() + 1:
            pred = pred.argmax(1)
        self.confusion += confusion_matrix(pred, target, self.num_classes, self.ignore_index)

    def compute(self) -> Tensor:
        return self.confusion
