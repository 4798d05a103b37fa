"""The kNN probe as a pretraining callback: per-tap kNN accuracy on labelled data, logged as training runs.

Add it to a pretraining run (``selfsup-color fit``) when labels exist, e.g. in the config::

    trainer:
      callbacks:
        - class_path: transfer.classification.callback.KNNProbeCallback
          init_args: {train: data/cifar10/train, val: data/cifar10/test, max_train_images: 5000}

After every ``every_n_epochs``-th validation it logs ``knn/<tap>/top1`` and ``knn/<tap>/top5``. Each
DDP rank extracts its shard of the images and the features are gathered, so the figure is the same
as in one process.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor, nn

from ..encoder import lightness_features
from .cache import extract_features, shard
from .data import ClassificationData
from .knn import DEFAULT_K, DEFAULT_TEMPERATURE, knn_probe
from .probes import DEFAULT_POOL_DIMS, pool_sizes


class TapReader(nn.Module):
    """The taps of a colorization network for RGB input, without freezing it (its owner trains it)."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        self.net = net

    def forward(self, rgb: Tensor, taps: list[str] | None = None) -> dict[str, Tensor]:
        return lightness_features(self.net, rgb, taps)


class KNNProbeCallback(Callback):
    """kNN top-1/top-5 per tap of the module's ``net`` on a labelled ImageFolder split."""

    def __init__(
        self,
        train: str,
        val: str | None = None,
        val_fraction: float = 0.1,
        resize: int = 32,
        crop: int = 32,
        max_train_images: int | None = 5000,
        max_val_images: int | None = 1000,
        taps: list[str] | None = None,
        pool_dims: int = DEFAULT_POOL_DIMS,
        k: int = DEFAULT_K,
        temperature: float = DEFAULT_TEMPERATURE,
        every_n_epochs: int = 1,
        batch_size: int = 256,
        num_workers: int = 0,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.data = ClassificationData(
            train, val, val_fraction, resize, crop, batch_size, num_workers, max_train_images, max_val_images
        )
        self.taps, self.pool_dims, self.k, self.temperature = taps, pool_dims, k, temperature
        self.every_n_epochs = every_n_epochs
        self._splits: Any = None

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        scores = self.evaluate(pl_module.net, trainer.global_rank, trainer.world_size)
        for tap, values in scores.items():
            for name, value in values.items():
                pl_module.log(f"knn/{tap}/{name}", value, rank_zero_only=False, sync_dist=False)

    def evaluate(self, net: Any, rank: int = 0, world: int = 1) -> dict[str, dict[str, float]]:
        """kNN scores of ``net``'s taps (every rank must call it under DDP: features are gathered)."""
        if self._splits is None:
            self._splits = self.data.splits()
        train, val = self._splits
        reader = TapReader(net)
        was_training = net.training
        net.eval()  # also for the shape probe: a training-mode forward would move BatchNorm statistics
        taps = net.select_taps(self.taps)
        device = next(net.parameters()).device
        with torch.no_grad():
            probe = reader(torch.full((1, 3, self.data.crop, self.data.crop), 0.5, device=device), taps)
        shapes = {name: tuple(f.shape[1:]) for name, f in probe.items()}
        sizes = pool_sizes(shapes, self.pool_dims)  # type: ignore[arg-type]
        channels = {name: shape[0] for name, shape in shapes.items()}
        stores = []
        for files in (train, val):
            mine = shard(files, rank, world)
            loader = self.data.loader(mine, train=False, shuffle=False)
            stores.append(extract_features(reader, sizes, channels, loader, len(mine.files), "memory"))
        net.train(was_training)
        bank = {name: torch.as_tensor(v).to(device) for name, v in stores[0].features.items()}
        queries = {name: torch.as_tensor(v).to(device) for name, v in stores[1].features.items()}
        return knn_probe(
            bank, stores[0].labels.to(device), queries, stores[1].labels.to(device), len(train.classes),
            self.k, self.temperature,
        )  # fmt: skip
