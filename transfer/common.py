"""What every transfer evaluation shares: config checks and the optimiser (Trainers: :mod:`.trainer`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_only

from selfsup_color.data.splits import write_split


def check_positive(key: str, value: Any, allow_none: bool = False) -> None:
    """ValueError naming config ``key`` unless ``value`` is a positive integer (or None if allowed)."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{key} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")


def check_data_source(format: str, root: str, val_fraction: float) -> None:
    """The checks every COCO-or-VOC data section shares; ValueError naming the key."""
    if format not in ("coco", "voc"):
        raise ValueError(f"data.format must be 'coco' or 'voc', got {format!r}")
    if not root:
        raise ValueError("data.root is required: the dataset folder")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in (0, 1), got {val_fraction}")


@dataclass(frozen=True)
class AnnotatedImages:
    """Where COCO- or VOC-annotated images are and how they split (detection, multi-label classification).

    Args:
        format: ``"coco"`` (instances JSON + image folder) or ``"voc"`` (Pascal VOC folders).
        root: coco: the folder that ``images``/``annotations`` are relative to; voc: the folder
            holding ``VOCdevkit/VOC<year>``.
        images, annotations: coco: the training image folder and instances JSON.
        val_images, val_annotations: coco: a separate validation set (e.g. val2017); unset: split
            ``annotations`` by ``val_fraction``/``split_seed`` or by ``split_file`` (JSON with
            ``"train"`` and ``"val"`` image-id lists). The split used goes to ``<out_dir>/split.json``.
        train_sets, val_set: voc: image sets as ``"<year>-<set>"`` (``["2007-trainval"]``, ``"2007-test"``).
        max_train_images, max_val_images: keep the first N of each split (quick runs).
    """

    format: Literal["coco", "voc"] = "coco"
    root: str = ""
    images: str = "images"
    annotations: str = "annotations/instances.json"
    val_images: str | None = None
    val_annotations: str | None = None
    val_fraction: float = 0.2
    split_seed: int = 0
    split_file: str | None = None
    train_sets: list[str] = field(default_factory=lambda: ["2007-trainval"])
    val_set: str = "2007-test"
    max_train_images: int | None = None
    max_val_images: int | None = None

    def __post_init__(self) -> None:
        check_data_source(self.format, self.root, self.val_fraction)
        if (self.val_images is None) != (self.val_annotations is None):
            raise ValueError("data.val_images and data.val_annotations go together: set both or neither")
        if self.val_annotations is not None and self.split_file is not None:
            raise ValueError("data.split_file splits one JSON; it cannot be used with data.val_annotations")
        if not self.train_sets or any("-" not in s for s in self.train_sets) or "-" not in self.val_set:
            raise ValueError(
                "data.train_sets and data.val_set must be '<year>-<set>' names, "
                f"got {self.train_sets} and {self.val_set!r}"
            )
        for key in ("max_train_images", "max_val_images"):
            check_positive(f"data.{key}", getattr(self, key), allow_none=True)

    def source(self) -> dict[str, Any]:
        """This section's :class:`AnnotatedImages` fields (where the images are, how they split)."""
        return {f.name: getattr(self, f.name) for f in fields(AnnotatedImages)}

    def record_split(self, path: Path, train_ids: list[Any], val_ids: list[Any]) -> None:
        """State the split used in ``path`` (global rank zero only), with the settings that made it."""
        if rank_zero_only.rank == 0:
            about = {"format": self.format, "root": self.root, "seed": self.split_seed}
            write_split(path, train_ids, val_ids, **about, val_fraction=self.val_fraction)


@dataclass(frozen=True)
class OptimConfig:
    """SGD with momentum and a step schedule (epochs at which the lr is multiplied by ``gamma``)."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    nesterov: bool = False

    def __post_init__(self) -> None:
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ValueError(f"optim.lr must be positive, got {self.lr}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"optim.momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"optim.milestones must be increasing epochs, got {self.milestones}")


def sgd_with_steps(params: Any, config: OptimConfig) -> dict[str, Any]:
    """``configure_optimizers`` output: SGD and a per-epoch MultiStepLR, as the paper's protocol."""
    optimizer = torch.optim.SGD(
        params,
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
    )
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.milestones), config.gamma)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}
