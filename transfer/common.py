"""What every transfer evaluation shares: config checks and the optimiser (Trainers: :mod:`.trainer`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch


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
