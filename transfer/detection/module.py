"""Training and evaluating a Faster R-CNN transfer detector with Lightning.

Training minimises the sum of torchvision's four Faster R-CNN losses (RPN objectness and box
regression, RoI classification and box regression), each logged under ``train/``. Validation
scores COCO box mAP@[.5:.95] (``val/map``) and mAP@0.5 (``val/map_50``) with torchmetrics'
:class:`~torchmetrics.detection.MeanAveragePrecision` on the pycocotools backend; torchmetrics
gathers the detections of every process before scoring, so the figures are the whole set's under DDP
(Lightning's distributed sampler repeats up to world_size - 1 images to even out the shards).
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torchmetrics.detection import MeanAveragePrecision
from torchvision.models.detection import FasterRCNN

from ..common import OptimConfig, sgd_with_steps
from .data import Target

Batch = tuple[list[Tensor], list[Target]]


def as_unit_float(images: list[Tensor]) -> list[Tensor]:
    """uint8 images as [0, 1] floats (floats pass unchanged)."""
    return [image.float() / 255 if image.dtype == torch.uint8 else image for image in images]


def box_metric() -> MeanAveragePrecision:
    """COCO box mAP (pycocotools)."""
    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools")


class DetectionModule(pl.LightningModule):
    """A :class:`~torchvision.models.detection.FasterRCNN` trained with SGD on its trainable parameters.

    Args:
        detector: from :func:`~transfer.detection.model.build_detector`.
        optim: SGD settings; milestones are in epochs.
        warmup_steps: ramp the learning rate linearly from ``warmup_factor`` x to 1 x over these steps.
        warmup_factor: the first step's fraction of the learning rate.
    """

    def __init__(
        self, detector: FasterRCNN, optim: OptimConfig, warmup_steps: int = 0, warmup_factor: float = 0.001
    ) -> None:
        super().__init__()
        self.detector = detector
        self.optim, self.warmup_steps, self.warmup_factor = optim, warmup_steps, warmup_factor
        self.val_map = box_metric()

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.detector.parameters() if p.requires_grad]

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        images, targets = batch
        losses = self.detector(as_unit_float(images), [_model_target(t) for t in targets])
        loss = sum(losses.values())
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(f"detection loss is {float(loss)} at step {self.global_step}: {losses}")
        size = len(images)
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, batch_size=size)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=size)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        images, targets = batch
        predictions = self.detector(as_unit_float(images))
        self.val_map.update(predictions, [_metric_target(t) for t in targets])

    def on_validation_epoch_end(self) -> None:
        scores = self.val_map.compute()  # synchronised across processes by torchmetrics
        self.val_map.reset()
        self.log("val/map", scores["map"].float(), sync_dist=True)
        self.log("val/map_50", scores["map_50"].float(), sync_dist=True)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self.global_step <= self.warmup_steps and self.warmup_steps > 0:
            self._set_lr_factor(self._warmup(self.global_step))

    def _warmup(self, step: int) -> float:
        progress = min(step / self.warmup_steps, 1.0)
        return self.warmup_factor + (1.0 - self.warmup_factor) * progress

    def _set_lr_factor(self, factor: float) -> None:
        passed = sum(1 for m in self.optim.milestones if m <= self.current_epoch)
        for group in self.trainer.optimizers[0].param_groups:
            group["lr"] = group["initial_lr"] * self.optim.gamma**passed * factor

    def configure_optimizers(self) -> dict[str, Any]:
        params = self.trainable_parameters()
        if not params:
            raise ValueError("the detector has no trainable parameters")
        return sgd_with_steps(params, self.optim)


def _model_target(target: Target) -> dict[str, Tensor]:
    return {"boxes": target["boxes"], "labels": target["labels"]}


def _metric_target(target: Target) -> dict[str, Tensor]:
    out = {"boxes": target["boxes"], "labels": target["labels"]}
    if "iscrowd" in target:
        out["iscrowd"] = target["iscrowd"]
    return out
