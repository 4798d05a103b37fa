"""What every transfer evaluation shares: the Trainer's settings, the optimiser's, and its logger."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer

from selfsup_color.pretrain.loggers import SafeWandbLogger


def check_positive(key: str, value: Any, allow_none: bool = False) -> None:
    """ValueError naming config ``key`` unless ``value`` is a positive integer (or None if allowed)."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{key} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")


@dataclass(frozen=True)
class TrainerConfig:
    """Lightning ``Trainer`` settings of a transfer run (devices, nodes and DDP like pretraining).

    ``extra`` passes any other ``Trainer`` argument (e.g. ``limit_val_batches``).
    """

    max_epochs: int = 10
    max_steps: int = -1
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = 10
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimConfig:
    """SGD with momentum and a step schedule (epochs at which the lr is multiplied by ``gamma``)."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    nesterov: bool = False


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


@dataclass(frozen=True)
class LoggerConfig:
    """wandb: offline unless an API key is configured (``offline=None``); ``enabled=False``: CSV."""

    enabled: bool = True
    project: str = "selfsup-color-transfer"
    offline: bool | None = None
    group: str | None = None


def make_logger(config: LoggerConfig, out_dir: Path, name: str) -> Any:
    """The run's logger: :class:`SafeWandbLogger` (files under ``out_dir``) or a CSV logger."""
    from lightning.pytorch.loggers import CSVLogger

    out_dir.mkdir(parents=True, exist_ok=True)
    if not config.enabled:
        return CSVLogger(out_dir, name=name)
    import wandb

    if wandb.run is not None:  # one wandb run per evaluation: close the previous one
        wandb.finish()
    return SafeWandbLogger(
        name=name, save_dir=str(out_dir), project=config.project, offline=config.offline, group=config.group
    )


def make_trainer(config: TrainerConfig, out_dir: Path, logger: Any, **overrides: Any) -> Trainer:
    """A ``Trainer`` writing under ``out_dir``; no checkpoints unless ``overrides`` ask for them.

    Seeds every generator with ``config.seed`` first, so heads start alike in every process and run.
    """
    from lightning.pytorch import seed_everything

    seed_everything(config.seed, workers=True, verbose=False)
    options: dict[str, Any] = {
        "max_epochs": config.max_epochs,
        "max_steps": config.max_steps,
        "accelerator": config.accelerator,
        "devices": config.devices,
        "num_nodes": config.num_nodes,
        "strategy": config.strategy,
        "precision": config.precision,
        "log_every_n_steps": config.log_every_n_steps,
        "default_root_dir": str(out_dir),
        "logger": logger,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "deterministic": False,
    }
    options.update(config.extra)
    options.update(overrides)
    return Trainer(**options)
