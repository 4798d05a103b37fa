"""LightningCLI for pretraining: ``selfsup-color fit|validate|test --config recipe.yaml``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from ..data import ColorizationDataModule
from .checkpoint_io import AtomicCheckpointIO
from .module import ColorizationModule

LOGGER_CLASS = "selfsup_color.pretrain.loggers.SafeWandbLogger"


class ColorizationCLI(LightningCLI):
    """LightningCLI with the run's checkpointing built in and wandb (offline without a key) as logger.

    Checkpoints go to ``<trainer.default_root_dir>/checkpoints`` unless a ``dirpath`` is set, so
    ``--ckpt_path last`` always finds the previous run's ``last.ckpt``: ``--checkpoint.*`` writes
    ``last.ckpt`` every ``every_n_train_steps``; ``--best_checkpoint.*`` keeps the best by
    ``val/rebalanced_auc``, judged right after each validation.
    """

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """fit, validate and test (no ``predict``: a colorization module has no ``predict_step``)."""
        verbs = LightningCLI.subcommands()
        verbs.pop("predict", None)
        return verbs

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(ModelCheckpoint, "best_checkpoint")
        parser.set_defaults(
            {
                "checkpoint.save_last": True,
                "checkpoint.save_top_k": 0,
                "checkpoint.every_n_train_steps": 1000,
                "best_checkpoint.monitor": "val/rebalanced_auc",
                "best_checkpoint.mode": "max",
                "best_checkpoint.save_top_k": 1,
                "best_checkpoint.filename": "best-{step}",
                "best_checkpoint.every_n_epochs": 1,  # checked at the end of every validation
            }
        )

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        root = Path(config.trainer.get("default_root_dir") or "runs/default")
        config.trainer.default_root_dir = str(root)
        for group in ("checkpoint", "best_checkpoint"):
            if config.get(group) and not config[group].get("dirpath"):
                config[group].dirpath = str(root / "checkpoints")
        logger = config.trainer.get("logger")
        if isinstance(logger, dict) or hasattr(logger, "get"):
            init = logger.get("init_args")
            if logger.get("class_path") == LOGGER_CLASS and init is not None and not init.get("save_dir"):
                init.save_dir = str(root)


def trainer_defaults() -> dict[str, Any]:
    """Defaults every run gets unless its config overrides them."""
    return {
        "logger": {"class_path": LOGGER_CLASS, "init_args": {"save_dir": None}},
        "plugins": [{"class_path": f"{AtomicCheckpointIO.__module__}.AtomicCheckpointIO"}],
        "log_every_n_steps": 10,
    }


def run_lightning_cli(args: list[str]) -> ColorizationCLI:
    """Parse ``args`` and run the subcommand (fit, validate, test)."""
    # `args` are this command's own arguments, not a second set beside sys.argv
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    return ColorizationCLI(
        ColorizationModule,
        ColorizationDataModule,
        trainer_defaults=trainer_defaults(),
        save_config_kwargs={"overwrite": True},
        args=args,
        auto_configure_optimizers=False,
    )
