"""LightningCLI for pretraining: ``selfsup-color fit|validate|test --config recipe.yaml``."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only

from ..data import ColorizationDataModule
from ..io import ensure_writable_dir, remove_stale_partials
from .checkpoint import PretrainCheckpoint, last_checkpoint_path, read_pretraining_checkpoint, resume_settings
from .checkpoint_io import AtomicCheckpointIO
from .module import ColorizationModule

CHECKPOINT_GROUPS = ("best_checkpoint", "checkpoint")
"""The best first: at an epoch's end it saves before ``last.ckpt``, which then records it."""

LOGGER_CLASS = "selfsup_color.pretrain.loggers.SafeWandbLogger"


class ColorizationCLI(LightningCLI):
    """LightningCLI with the run's checkpointing built in and wandb (offline without a key) as logger.

    Checkpoints go to ``<trainer.default_root_dir>/checkpoints`` unless a ``dirpath`` is set, so
    ``--ckpt_path last`` always finds the previous run's ``last.ckpt``: ``--checkpoint.*`` writes
    ``last.ckpt`` every ``every_n_train_steps``; ``--best_checkpoint.*`` keeps the best by
    ``val/rebalanced_auc``, judged right after each validation.

    Before anything is built: the run folder must be writable; ``--ckpt_path last`` must find a
    ``last.ckpt``; the checkpoint to resume must be one that ``fit`` wrote, read with
    ``weights_only=True`` (``--weights_only false`` is refused); its settings fill in those not given,
    and given ones may change only what does not define the network (:func:`resume_settings`). A
    ``fit`` deletes the temporary files that killed checkpoint writes left behind.
    """

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """fit, validate and test (no ``predict``: a colorization module has no ``predict_step``)."""
        verbs = LightningCLI.subcommands()
        verbs.pop("predict", None)
        return verbs

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for group in CHECKPOINT_GROUPS:
            parser.add_lightning_class_args(PretrainCheckpoint, group)
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
                "best_checkpoint.save_on_train_epoch_end": False,  # saved before a last.ckpt due then
            }
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        if args is None:
            args = sys.argv[1:]
        # what the user set (config files and flags), without defaults: a resumed run honours these
        if isinstance(args, (dict, Namespace)):
            self.given = parser.parse_object(args, defaults=False)
        else:
            self.given = parser.parse_args(args, defaults=False)

    def _parse_ckpt_path(self) -> None:
        """Replaced by :meth:`resume_from` (LightningCLI's overrides what the user set with the
        checkpoint's settings)."""

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand, self.config) if self.subcommand else self.config
        root = Path(config.trainer.get("default_root_dir") or "runs/default")
        config.trainer.default_root_dir = str(root)
        for group in CHECKPOINT_GROUPS:
            if config.get(group) and not config[group].get("dirpath"):
                config[group].dirpath = str(root / "checkpoints")
        logger = config.trainer.get("logger")
        if isinstance(logger, dict) or hasattr(logger, "get"):
            init = logger.get("init_args")
            if logger.get("class_path") == LOGGER_CLASS and init is not None and not init.get("save_dir"):
                init.save_dir = str(root)
        ensure_writable_dir(root, "run folder", "choose a writable --trainer.default_root_dir")
        if self.subcommand == "fit" and rank_zero_only.rank == 0:
            started = time.time()
            for folder in {config[group].dirpath for group in CHECKPOINT_GROUPS if config.get(group)}:
                for path in remove_stale_partials(folder, started):
                    rank_zero_info(f"Removed {path}, left by a checkpoint write that was killed")
        if self.subcommand:
            self.resume_from(config)

    def resume_from(self, config: Namespace) -> None:
        """Check the checkpoint that ``--ckpt_path`` names and take its settings (see the class docstring)."""
        ckpt_path = config.get("ckpt_path")
        if config.get("weights_only") is False:
            raise ValueError(
                "--weights_only false is refused: selfsup-color checkpoints load with weights_only=True, "
                "and unpickling anything else can run code; if the file is a trusted foreign checkpoint, "
                "convert it first"
            )
        if not ckpt_path or "://" in str(ckpt_path) or ckpt_path in ("best", "hpc"):
            return
        if ckpt_path == "last":
            folders = [config[g].dirpath for g in CHECKPOINT_GROUPS if config.get(g) and config[g].save_last]
            found = [p for p in map(last_checkpoint_path, folders) if p.is_file()]
            if not found:
                where = ", ".join(map(str, folders)) or "(no checkpoint group has save_last set)"
                raise FileNotFoundError(
                    f"--ckpt_path last: no last.ckpt in {where}; to start a new run, leave out --ckpt_path"
                )
            ckpt_path = config.ckpt_path = str(max(found, key=lambda p: p.stat().st_mtime))
        ckpt = read_pretraining_checkpoint(ckpt_path, mmap=True)
        if "pytorch-lightning_version" not in ckpt:
            raise ValueError(
                f"{ckpt_path} holds a 'state_dict' and settings but no Lightning training state "
                "('pytorch-lightning_version'); --ckpt_path takes a checkpoint that `selfsup-color fit` wrote"
            )
        given = self.given.get(self.subcommand, Namespace()).get("model") or Namespace()
        settings = resume_settings(ckpt_path, ckpt["hyper_parameters"], given.as_dict())
        del ckpt
        if settings:
            self.config = self.parser.parse_object({self.subcommand: {"model": settings}}, self.config)


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
