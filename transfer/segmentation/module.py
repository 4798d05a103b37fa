"""The Lightning module of segmentation transfer: pixel cross-entropy, SGD, confusion-matrix validation."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor
from torchmetrics import MeanMetric

from ..common import OptimConfig, sgd_with_steps
from .data import IGNORE_INDEX
from .metrics import ConfusionMatrix, class_iou, mean_iou, pixel_accuracy
from .model import SegmentationNet


def pixel_cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Mean cross-entropy over the non-ignored pixels; 0 (with a gradient) when every pixel is ignored.

    ``F.cross_entropy``'s mean would be 0/0 = NaN for a batch of ignored pixels only.
    """
    total = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
    return total / (target != ignore_index).sum().clamp(min=1)


class SegmentationModule(LightningModule):
    """Trains a :class:`SegmentationNet` on ``(uint8 images, int64 masks)`` batches.

    Validation sums a confusion matrix over all batches and processes, then logs ``val/miou`` and
    ``val/pixel_acc`` (fractions); :attr:`last_scores` keeps them with the per-class IoU.
    """

    def __init__(self, net: SegmentationNet, num_classes: int, optim: OptimConfig) -> None:
        super().__init__()
        self.net, self.num_classes, self.optim = net, num_classes, optim
        self.confusion = ConfusionMatrix(num_classes)
        self.val_loss = MeanMetric()  # weighted by counted pixels; like the confusion, safe under DDP
        self.last_scores: dict[str, Any] = {}

    def forward(self, rgb: Tensor) -> Tensor:
        return self.net(rgb)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, masks = batch
        loss = pixel_cross_entropy(self(images), masks)
        self.log("train/loss", loss, prog_bar=True, batch_size=images.shape[0])
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, masks = batch
        logits = self(images)
        counted = (masks != IGNORE_INDEX).sum()
        self.val_loss.update(pixel_cross_entropy(logits, masks), weight=counted.clamp(min=1).float())
        self.confusion.update(logits.argmax(1), masks)

    def on_validation_epoch_end(self) -> None:
        confusion = self.confusion.compute().cpu()  # summed over processes
        loss = float(self.val_loss.compute())
        self.confusion.reset()
        self.val_loss.reset()
        scores = {"miou": mean_iou(confusion), "pixel_acc": pixel_accuracy(confusion)}
        self.last_scores = {
            **scores,
            "class_iou": class_iou(confusion).tolist(),
            "pixels": int(confusion.sum()),
        }
        for name, value in {**scores, "loss": loss}.items():
            # the same value on every process; syncing it keeps Lightning's processes in step
            value_t = torch.tensor(value, dtype=torch.float32, device=self.device)
            self.log(f"val/{name}", value_t, prog_bar=name == "miou", sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.parameters() if p.requires_grad]
        return sgd_with_steps(params, self.optim)
