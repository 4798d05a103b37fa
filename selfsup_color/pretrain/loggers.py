"""wandb that never crashes a run, and logger-agnostic image logging."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only


def wandb_offline_by_default() -> bool:
    """Offline unless an API key or ``WANDB_MODE`` says otherwise (no key = no server to talk to)."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode in ("offline", "dryrun", "disabled")
    return not (os.environ.get("WANDB_API_KEY") or Path("~/.netrc").expanduser().is_file())


class SafeWandbLogger(WandbLogger):
    """:class:`WandbLogger` that is offline by default without an API key and whose failures warn.

    ``offline=None`` (the default) picks offline mode when no API key is configured, and honours
    ``WANDB_MODE=disabled``: nothing is written (Lightning's ``offline=True`` would overwrite it with
    ``dryrun``). A logging call that raises (network gone, disk full, wandb bug) warns once and the
    run goes on; logging a week-long pretraining must never be what kills it.
    """

    def __init__(
        self, *args: Any, offline: bool | None = None, project: str = "selfsup-color", **kwargs: Any
    ):
        if offline is None and os.environ.get("WANDB_MODE") == "disabled":
            offline, kwargs["mode"] = False, "disabled"
        super().__init__(
            *args,
            offline=wandb_offline_by_default() if offline is None else offline,
            project=project,
            **kwargs,
        )
        self._failed: set[str] = set()

    def _guard(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            if name not in self._failed:
                self._failed.add(name)
                warnings.warn(
                    f"wandb {name} failed ({type(error).__name__}: {error}); training goes on",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return None

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        self._guard("log_metrics", super().log_metrics, metrics, step)

    def log_hyperparams(self, params: Any) -> None:
        self._guard("log_hyperparams", super().log_hyperparams, params)

    def log_image(self, key: str, images: list[Any], step: int | None = None, **kwargs: Any) -> None:
        self._guard("log_image", super().log_image, key, images, step, **kwargs)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._guard("after_save_checkpoint", super().after_save_checkpoint, checkpoint_callback)


def run_dir(trainer: Trainer) -> Path:
    """Where this run keeps its files: the wandb run folder, the logger's log_dir, or the root dir.

    Safe on one rank alone: unlike ``trainer.log_dir`` it does not broadcast across DDP ranks.
    """
    logger = trainer.logger
    if isinstance(logger, WandbLogger):
        try:
            return Path(logger.experiment.dir)
        except Exception:  # disabled or broken wandb, or a rank without the run: the trainer's folder
            pass
    log_dir = getattr(logger, "log_dir", None) if logger is not None else None
    return Path(log_dir or trainer.default_root_dir)


@rank_zero_only
def log_image(trainer: Trainer, key: str, image: np.ndarray, caption: str | None = None) -> Path:
    """Log an H x W x 3 uint8 image at the current step to wandb/TensorBoard, and save it as PNG."""
    from PIL import Image

    step = trainer.global_step
    path = run_dir(trainer) / "images" / f"{key.replace('/', '_')}_{step:08d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            extra = {"caption": [caption]} if caption else {}
            logger.log_image(key, [image], step=step, **extra)
        elif hasattr(logger.experiment, "add_image"):
            logger.experiment.add_image(key, image, step, dataformats="HWC")
    return path
