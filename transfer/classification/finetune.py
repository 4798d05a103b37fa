"""Fine-tuning: freeze the encoder up to a tap, train the rest and a classifier on the deepest tap.

With nothing frozen and a random encoder this is the "supervised from scratch" baseline: the same
architecture trained on the labels, whose frozen layers are then probed like any other encoder.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

from ..common import OptimConfig, sgd_with_steps
from ..encoder import LightnessEncoder
from .probes import ProbeHeads, new_epoch_crops, pool_features


class FineTune(LightningModule):
    """A (partly) trainable encoder and a pooled BatchNorm + linear classifier on its deepest tap."""

    def __init__(
        self, encoder: LightnessEncoder, tap: str, pool: int, num_classes: int, optim: OptimConfig
    ) -> None:
        super().__init__()
        self.encoder, self.tap, self.pool, self.optim = encoder, tap, {tap: pool}, optim
        self.head = ProbeHeads({tap: encoder.tap_channels()[tap] * pool * pool}, num_classes)
        self.top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.top5 = MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro")

    def forward(self, rgb: Tensor) -> Tensor:
        return self.head(pool_features(self.encoder(rgb, [self.tap]), self.pool))[self.tap]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = F.cross_entropy(self(batch["rgb"]), batch["label"])
        self.log("train/loss", loss, batch_size=len(batch["label"]))
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        logits = self(batch["rgb"])
        self.top1.update(logits, batch["label"])
        self.top5.update(logits, batch["label"])

    def on_validation_epoch_end(self) -> None:
        self.log(f"val/{self.tap}/top1", self.top1.compute())
        self.log(f"val/{self.tap}/top5", self.top5.compute())
        self.top1.reset()
        self.top5.reset()

    def configure_optimizers(self) -> dict[str, Any]:
        params: list[nn.Parameter] = [p for p in self.parameters() if p.requires_grad]
        return sgd_with_steps(params, self.optim)

    def on_train_epoch_start(self) -> None:
        new_epoch_crops(self)
