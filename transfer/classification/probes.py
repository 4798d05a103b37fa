"""Linear probes on frozen features, the paper's protocol: one per tap, all trained in one pass.

Each tap's feature map is average-pooled to about ``pool_dims`` values (``s x s`` cells, ``s`` chosen
from its channels, or given per tap), then goes through a BatchNorm without affine parameters and a
linear classifier. The encoder runs once per batch for all taps (or not at all, when features are
cached); the summed loss trains every probe at once. Top-1 and top-5 per tap are computed at the end
of training on the evaluation split, with no model selection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

from ..common import OptimConfig, sgd_with_steps
from ..encoder import LightnessEncoder

DEFAULT_POOL_DIMS = 9000
"""About how many values each tap is pooled to (Zhang et al. 2016, following Krahenbuhl et al.)."""


def pool_size(channels: int, height: int, width: int, dims: int = DEFAULT_POOL_DIMS) -> int:
    """Side ``s`` of the ``s x s`` average pooling that brings ``channels`` maps closest to ``dims`` values.

    ``s`` is at least 1 and at most the map's smaller side (pooling never upsamples).
    """
    if channels < 1 or height < 1 or width < 1 or dims < 1:
        raise ValueError(f"need positive channels, size and dims, got {channels}, {height}x{width}, {dims}")
    return max(1, min(round(math.sqrt(dims / channels)), height, width))


def tap_shapes(encoder: LightnessEncoder, taps: Sequence[str], crop: int) -> dict[str, tuple[int, int, int]]:
    """(C, H, W) of each tap for ``crop`` x ``crop`` inputs, from one forward of a gray image."""
    device = next(encoder.parameters()).device
    with torch.no_grad():
        was_training = encoder.training
        encoder.eval()
        features = encoder(torch.full((1, 3, crop, crop), 128, dtype=torch.uint8, device=device), taps)
        encoder.train(was_training)
    return {name: tuple(f.shape[1:]) for name, f in features.items()}  # type: ignore[misc]


def pool_sizes(
    shapes: dict[str, tuple[int, int, int]],
    dims: int = DEFAULT_POOL_DIMS,
    fixed: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """The pooling side of each tap of ``shapes`` (C, H, W): ``fixed[tap]`` where given, else
    :func:`pool_size` for ``dims`` values.

    ``fixed`` holds per-tap sides such as the official linear test's (richzhang/colorization,
    ``feature_learning_tests/linear/train_val.prototxt``: conv1 10, conv2 6, conv3 5, conv4 5, conv5 6).
    ValueError for a fixed tap that is not in ``shapes``, or a side outside 1..the map's smaller side.
    """
    fixed = dict(fixed or {})
    unknown = sorted(set(fixed).difference(shapes))
    if unknown:
        raise ValueError(f"pool sizes given for taps {unknown} that are not probed; probed: {list(shapes)}")
    for name, side in fixed.items():
        _, height, width = shapes[name]
        if not 1 <= side <= min(height, width):
            raise ValueError(
                f"pool size {side} for tap {name!r} must be in 1..{min(height, width)} (its map is "
                f"{height} x {width}; pooling never upsamples)"
            )
    return {name: fixed.get(name) or pool_size(c, h, w, dims) for name, (c, h, w) in shapes.items()}


def pool_features(features: dict[str, Tensor], sizes: dict[str, int]) -> dict[str, Tensor]:
    """Each tap average-pooled to ``sizes[tap]`` squared cells and flattened: N x (C s s)."""
    return {name: F.adaptive_avg_pool2d(features[name], sizes[name]).flatten(1) for name in sizes}


class ProbeHeads(nn.Module):
    """Per tap: BatchNorm1d without affine parameters, then a linear classifier."""

    def __init__(self, dims: dict[str, int], num_classes: int) -> None:
        super().__init__()
        self.taps = list(dims)
        self.heads = nn.ModuleDict(
            {
                name: nn.Sequential(nn.BatchNorm1d(dim, affine=False), nn.Linear(dim, num_classes))
                for name, dim in dims.items()
            }
        )

    def forward(self, pooled: dict[str, Tensor]) -> dict[str, Tensor]:
        return {name: self.heads[name](pooled[name].float()) for name in self.taps}


def new_epoch_crops(module: LightningModule) -> None:
    """Give ``module``'s training images this epoch's random crops (workers too); no-op on cached features."""
    dataset = getattr(module.trainer.train_dataloader, "dataset", None)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(module.current_epoch)


class LinearProbes(LightningModule):
    """Trains one probe per tap on a frozen encoder; batches hold images (``rgb``) or cached ``features``.

    Args:
        encoder: a fully frozen :class:`LightnessEncoder` (needed only for image batches).
        sizes: the pooling side per tap (:func:`pool_sizes`); its keys are the probed taps.
        channels: channels per tap.
        num_classes: classes of the task.
        optim: SGD settings (momentum 0.9 and a step schedule by default).
    """

    def __init__(
        self,
        encoder: LightnessEncoder | None,
        sizes: dict[str, int],
        channels: dict[str, int],
        num_classes: int,
        optim: OptimConfig,
    ) -> None:
        super().__init__()
        if encoder is not None and not encoder.fully_frozen:
            raise ValueError("linear probes need a fully frozen encoder (freeze_at='all')")
        self.encoder = encoder
        self.sizes = dict(sizes)
        self.optim = optim
        self.num_classes = num_classes
        self.heads = ProbeHeads({name: channels[name] * s * s for name, s in self.sizes.items()}, num_classes)
        self.top1 = nn.ModuleDict(
            {t: MulticlassAccuracy(num_classes, top_k=1, average="micro") for t in sizes}
        )
        self.top5 = nn.ModuleDict(
            {t: MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro") for t in sizes}
        )

    def pooled(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Pooled features of a batch: cached ones, or one encoder forward for every tap."""
        if "features" in batch:
            return batch["features"]
        if self.encoder is None:
            raise ValueError("this batch has images but the probes were built without an encoder")
        with torch.no_grad():
            return pool_features(self.encoder(batch["rgb"], list(self.sizes)), self.sizes)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return self.heads(self.pooled(batch))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        logits = self(batch)
        losses = {name: F.cross_entropy(out, batch["label"]) for name, out in logits.items()}
        for name, loss in losses.items():
            self.log(f"train/loss/{name}", loss, batch_size=len(batch["label"]))
        return torch.stack(list(losses.values())).sum()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        for name, out in self(batch).items():
            self.top1[name].update(out, batch["label"])
            self.top5[name].update(out, batch["label"])

    def on_validation_epoch_end(self) -> None:
        for name in self.sizes:
            self.log(f"val/{name}/top1", self.top1[name].compute(), sync_dist=False)
            self.log(f"val/{name}/top5", self.top5[name].compute(), sync_dist=False)
            self.top1[name].reset()
            self.top5[name].reset()

    def on_train_epoch_start(self) -> None:
        new_epoch_crops(self)  # images, not cached features: new random crops every epoch

    def configure_optimizers(self) -> dict[str, Any]:
        return sgd_with_steps(self.heads.parameters(), self.optim)
