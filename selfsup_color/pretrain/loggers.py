"""wandb that never crashes a run, logger-agnostic image logging, and files as wandb artifacts."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn


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

    Offline runs pass ``mode="offline"`` to ``wandb.init`` rather than Lightning's ``offline=True``, which
    refuses ``log_model``: with ``log_model`` set, checkpoints are logged as offline artifacts (wandb
    copies each into its staging folder) and ``wandb sync <run folder>`` uploads them later.
    """

    def __init__(
        self,
        *args: Any,
        offline: bool | None = None,
        project: str = "selfsup-color",
        log_model: Literal["all"] | bool = False,
        **kwargs: Any,
    ):
        if offline is None and os.environ.get("WANDB_MODE") == "disabled":
            kwargs["mode"], log_model = "disabled", False  # an artifact would copy files even so
        elif wandb_offline_by_default() if offline is None else offline:
            kwargs["mode"] = kwargs.get("mode") or "offline"  # LightningCLI passes mode=None
            if log_model:
                rank_zero_warn(
                    f"wandb runs offline (no API key, or WANDB_MODE=offline): log_model={log_model} keeps "
                    "checkpoints as offline artifacts, uploaded by `wandb sync <run folder>`"
                )
        super().__init__(*args, offline=False, project=project, log_model=log_model, **kwargs)
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

    def finalize(self, status: str) -> None:
        self._guard("finalize", super().finalize, status)  # log_model=True logs checkpoints here


def artifact_name(name: str) -> str:
    """``name`` as a valid wandb artifact name: each run of characters outside ``[A-Za-z0-9_.-]`` -> ``-``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "files"


def log_files(
    logger: Logger | None,
    name: str,
    artifact_type: str,
    paths: Sequence[str | Path],
    metadata: dict[str, Any] | None = None,
) -> bool:
    """Log ``paths`` as one wandb artifact (each file under its own name) from global rank zero.

    A no-op returning False for other loggers, other ranks, a disabled wandb run, or a
    :class:`SafeWandbLogger` whose logging failed (it warns). wandb versions an artifact name across a
    project's runs, so name a run's own outputs after the run, e.g. ``f"prior-{logger.version}"``.
    Offline, the artifact is stored with the run and uploaded by ``wandb sync``.
    """
    if not isinstance(logger, WandbLogger) or rank_zero_only.rank != 0:
        return False

    def log() -> bool:
        import wandb

        run = logger.experiment
        if getattr(run, "disabled", False):
            return False
        artifact = wandb.Artifact(artifact_name(name), type=artifact_type, metadata=metadata)
        for path in paths:
            artifact.add_file(str(path), name=Path(path).name)
        run.log_artifact(artifact)
        return True

    if isinstance(logger, SafeWandbLogger):
        return bool(logger._guard("log_files", log))
    return log()


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
