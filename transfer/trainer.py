"""The Trainers of a transfer command: the whole ``Trainer`` signature, one seed, one wandb group.

A transfer command trains several times (the encoder, then each baseline), so it keeps the ``trainer``
section unbuilt (:class:`TrainerSpec`) and builds one fresh ``Trainer`` and logger per run, each writing in
its own folder and named after the encoder. Logger, callbacks and plugins are given as in pretraining
(``--trainer.logger CSVLogger``, ``--trainer.logger false``, ``--trainer.callbacks+ ...``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.cli import LightningArgumentParser
from lightning.pytorch.loggers import WandbLogger

from selfsup_color.pretrain.cli import LOGGER_CLASS

TRANSFER_LOGGER: dict[str, Any] = {
    "class_path": LOGGER_CLASS,
    "init_args": {"project": "selfsup-color-transfer"},
}
"""The default logger: wandb (offline without an API key), project ``selfsup-color-transfer``."""
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": 10,
    "log_every_n_steps": 10,
    "enable_checkpointing": False,
    "enable_model_summary": False,
    "logger": TRANSFER_LOGGER,
}
"""Where a transfer ``Trainer`` differs from Lightning's defaults (no checkpoints: results are the output)."""


def add_trainer_arguments(parser: LightningArgumentParser) -> None:
    """``--trainer.*`` (every ``Trainer`` argument, transfer defaults) and ``--seed_everything``."""
    parser.add_lightning_class_args(Trainer, "trainer")
    parser.set_defaults({f"trainer.{key}": value for key, value in TRAINER_DEFAULTS.items()})
    parser.add_argument(
        "--seed_everything", type=int, default=0, help="seeds every generator before each run"
    )


@cache
def _trainer_parser() -> LightningArgumentParser:
    parser = LightningArgumentParser(exit_on_error=False)
    parser.add_lightning_class_args(Trainer, "trainer")
    return parser


@dataclass
class TrainerSpec:
    """How each ``Trainer`` of one command is built.

    Args:
        options: ``Trainer`` keyword arguments as in a config (classes as ``class_path``/``init_args``
            mappings); unset ones take :data:`TRAINER_DEFAULTS`, then Lightning's. Unknown keys fail.
        seed: ``seed_everything`` before each run, so every run's heads start alike.
        group: the wandb group of all runs of the command (None: ungrouped).
    """

    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    group: str | None = None

    @classmethod
    def from_config(cls, config: Namespace, group: str | None) -> TrainerSpec:
        """The spec of a parsed command config (its ``trainer`` section and ``seed_everything``)."""
        return cls(config.trainer.as_dict(), int(config.seed_everything), group)

    def build(self, out_dir: Path, name: str, **overrides: Any) -> Trainer:
        """A fresh seeded ``Trainer`` writing under ``out_dir``, its logger's run called ``name``."""
        seed_everything(self.seed, workers=True, verbose=False)
        options = {**TRAINER_DEFAULTS, **self.options, **overrides, "default_root_dir": str(out_dir)}
        logger = run_logger(options.pop("logger"), Path(out_dir), name, self.group)
        parser = _trainer_parser()
        built = parser.instantiate_classes(parser.parse_object({"trainer": options})).trainer
        return Trainer(**{**built.as_dict(), "logger": logger})

    def device(self) -> str:
        """The device of single-process work (kNN): ``trainer.accelerator``'s, ``auto`` picking a GPU."""
        import torch

        accelerator = str(self.options.get("accelerator", "auto"))
        if accelerator == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return "cuda" if accelerator == "gpu" else accelerator

    def settings(self) -> dict[str, Any]:
        """What to record beside a result: the options and the seed."""
        return {**TRAINER_DEFAULTS, **self.options, "seed_everything": self.seed}


def run_logger(spec: Any, out_dir: Path, name: str, group: str | None) -> Any:
    """The logger of one run from a config's ``trainer.logger`` value.

    ``False``/``None``: none; ``True``: Lightning's default; a ``class_path`` mapping (or a list of them):
    built with ``save_dir`` (if unset) in ``out_dir``, ``name`` as the run's name (after the configured one,
    if any) and, for wandb, ``group``. A previous wandb run still open is finished first.
    """
    if spec is None or isinstance(spec, bool):
        return spec
    if isinstance(spec, list):
        return [run_logger(one, out_dir, name, group) for one in spec]
    if not isinstance(spec, dict) or "class_path" not in spec:
        return spec  # already a Logger
    kind = _import(spec["class_path"])
    init = dict(spec.get("init_args") or {})
    accepted = {
        name for c in kind.__mro__ if "__init__" in vars(c) for name in inspect.signature(c).parameters
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    if "save_dir" in accepted and init.get("save_dir") in (None, "", "."):
        init["save_dir"] = str(out_dir)
    if "name" in accepted:
        init["name"] = f"{init['name']}-{name}" if init.get("name") else name
    if issubclass(kind, WandbLogger):
        import wandb

        if wandb.run is not None:  # one wandb run per evaluation: close the previous one
            wandb.finish()
        if group and not init.get("group"):
            init["group"] = group
    return kind(**init)


def _import(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)
