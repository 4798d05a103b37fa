"""The multi-label LightningModule: an encoder tap, pooled, then a linear layer with one logit per class.

It follows philkr/voc-classification ``src/train_cls.py`` (the VOC07 classification test of
richzhang/colorization ``feature_learning_tests/``): a new ``fc8_cls`` with 20 outputs on ``drop7``
(fc7 after dropout 0.5), initialised N(0, 0.01) with bias 0.1, trained with a sigmoid cross-entropy
summed over the classes that are not ignored and divided by the batch size, biases at twice the
learning rate. Evaluation averages the scores of every test image's random crops and reports the mAP
of those (``map``) and of the first crop alone (``map_1crop``), the protocol's two figures.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torch.nn import functional as F

from ..classification.probes import new_epoch_crops, pool_features
from ..common import OptimConfig, sgd_with_steps
from ..encoder import LightnessEncoder
from .metrics import IGNORED, mean_average_precision

HEAD_WEIGHT_STD = 0.01
HEAD_BIAS = 0.1
"""The protocol's initialisation of the new layers (``--random-from drop7``): N(0, 0.01), bias 0.1."""


def masked_bce(logits: Tensor, targets: Tensor) -> Tensor:
    """Sigmoid cross-entropy summed over the (image, class) pairs not :data:`IGNORED`, divided by N.

    ``logits`` N x K floats, ``targets`` N x K in {0, 1, IGNORED}. The protocol's
    ``SigmoidCrossEntropyLoss`` (philkr/voc-classification ``src/python_layers.py``) normalises by
    the batch size, not by the number of pairs kept, so an ignored pair adds nothing to the loss nor
    changes the weight of the others.
    """
    if logits.shape != targets.shape or logits.ndim != 2:
        raise ValueError(
            f"logits and targets must both be N x K, got {tuple(logits.shape)}, {tuple(targets.shape)}"
        )
    kept = targets != IGNORED
    losses = F.binary_cross_entropy_with_logits(logits.float(), (targets == 1).float(), reduction="none")
    return (losses * kept).sum() / max(1, len(logits))


class MultilabelHead(nn.Sequential):
    """Dropout, optionally BatchNorm without affine parameters, then the linear classifier."""

    def __init__(self, dim: int, num_classes: int, dropout: float, batchnorm: bool) -> None:
        norm = [nn.BatchNorm1d(dim, affine=False)] if batchnorm else []
        super().__init__(nn.Dropout(dropout), *norm, nn.Linear(dim, num_classes))
        linear = self[-1]
        nn.init.normal_(linear.weight, 0.0, HEAD_WEIGHT_STD)
        nn.init.constant_(linear.bias, HEAD_BIAS)


class MultilabelFineTune(LightningModule):
    """A (partly) trainable encoder and a :class:`MultilabelHead` on one of its taps.

    Args:
        encoder: frozen up to some tap (or not at all).
        tap: the tap the head reads, average-pooled to ``pool`` x ``pool`` cells.
        num_classes: K.
        optim: SGD with momentum and a step schedule.
        dropout, batchnorm: the head (see :class:`MultilabelHead`).
        bias_lr_mult: learning-rate multiplier of every ``*.bias`` parameter (the protocol's 2).
        schedule: whether ``optim.milestones`` count epochs or optimizer steps.
    """

    def __init__(
        self,
        encoder: LightnessEncoder,
        tap: str,
        pool: int,
        num_classes: int,
        optim: OptimConfig,
        dropout: float = 0.5,
        batchnorm: bool = False,
        bias_lr_mult: float = 2.0,
        schedule: Literal["epoch", "step"] = "epoch",
    ) -> None:
        super().__init__()
        self.encoder, self.tap, self.pool = encoder, tap, {tap: pool}
        self.optim, self.bias_lr_mult, self.schedule = optim, bias_lr_mult, schedule
        dim = encoder.tap_channels()[tap] * pool * pool
        self.head = MultilabelHead(dim, num_classes, dropout, batchnorm)
        self._scores: list[dict[str, Tensor]] = []
        self.scored_classes = 0
        """How many classes the last evaluation scored (those with a positive)."""

    def forward(self, rgb: Tensor) -> Tensor:
        """Logits N x K of an N x 3 x H x W batch."""
        return self.head(pool_features(self.encoder(rgb, [self.tap]), self.pool)[self.tap].float())

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor | None:
        if not len(batch["index"]):  # every file of the batch was unreadable: skip the step
            return None
        loss = masked_bce(self(batch["rgb"]), batch["target"])
        self.log("train/loss", loss, batch_size=len(batch["target"]))
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        rgb = batch["rgb"]  # N x crops x 3 x S x S
        if not len(batch["index"]):
            return
        logits = self(rgb.flatten(0, 1)).view(*rgb.shape[:2], -1).double()
        self._scores.append(
            {
                "mean": logits.mean(1),
                "first": logits[:, 0],
                "target": batch["target"],
                "index": batch["index"],
            }
        )

    def on_validation_epoch_end(self) -> None:
        parts = {
            key: torch.cat([s[key] for s in self._scores]) for key in ("mean", "first", "target", "index")
        }
        self._scores.clear()
        if self.trainer.world_size > 1:  # every rank gets every image; padded duplicates dropped below
            parts = {key: value.flatten(0, 1) for key, value in self.all_gather(parts).items()}
        keep = first_of_each(parts["index"])
        target = parts["target"][keep].cpu()
        for name, key in (("map", "mean"), ("map_1crop", "first")):
            value, scored = mean_average_precision(parts[key][keep].cpu(), target)
            self.log(f"val/{self.tap}/{name}", value)
        self.scored_classes = scored

    def configure_optimizers(self) -> dict[str, Any]:
        trained = [(name, p) for name, p in self.named_parameters() if p.requires_grad]
        weights = [p for name, p in trained if not name.endswith(".bias")]
        biases = [p for name, p in trained if name.endswith(".bias")]
        groups = [{"params": weights}, {"params": biases, "lr": self.optim.lr * self.bias_lr_mult}]
        config = sgd_with_steps([g for g in groups if g["params"]], self.optim)
        config["lr_scheduler"]["interval"] = self.schedule
        return config

    def on_train_epoch_start(self) -> None:
        new_epoch_crops(self)


def first_of_each(index: Tensor) -> Tensor:
    """Positions of the first occurrence of every value of ``index`` (DDP samplers repeat items)."""
    order = torch.argsort(index, stable=True)
    sorted_index = index[order]
    first = torch.ones_like(sorted_index, dtype=torch.bool)
    first[1:] = sorted_index[1:] != sorted_index[:-1]
    return order[first]
