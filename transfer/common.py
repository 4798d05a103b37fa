"""What every transfer evaluation shares: the Trainer's settings, the optimiser's, and its logger."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
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


def check_data_source(format: str, root: str, val_fraction: float) -> None:
    """The checks every COCO-or-VOC data section shares; ValueError naming the key."""
    if format not in ("coco", "voc"):
        raise ValueError(f"data.format must be 'coco' or 'voc', got {format!r}")
    if not root:
        raise ValueError("data.root is required: the dataset folder")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in (0, 1), got {val_fraction}")


def sections_from_dict(where: str, values: dict[str, Any], parts: dict[str, type]) -> dict[str, Any]:
    """Build each dataclass section present in ``values`` (the caller's defaults fill the rest).

    Unknown keys, at the top or inside a section, raise ValueError naming them.
    """
    no_unknown(where, values, set(parts))
    built: dict[str, Any] = {}
    for key, kind in parts.items():
        if key not in values:
            continue
        section = values[key]
        if not isinstance(section, dict):
            raise ValueError(f"{key} must be a mapping, got {type(section).__name__}")
        no_unknown(key, section, {f.name for f in fields(kind)})
        built[key] = kind(**section)
    return built


def no_unknown(where: str, values: dict[str, Any], known: set[str]) -> None:
    """ValueError listing the keys of ``values`` outside ``known``."""
    unknown = sorted(set(values).difference(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(known)}")


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
