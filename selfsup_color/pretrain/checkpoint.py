"""Pretraining checkpoints: when they are written, which one a run resumes from, and what it restores."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info

from ..checkpoints import load_state_strict, read_checkpoint
from ..pretexts import build_pretext
from .module import ColorizationModule

if TYPE_CHECKING:
    from lightning.pytorch import LightningModule, Trainer

EXPECTED = (
    "expected a checkpoint that `selfsup-color fit` wrote (a Lightning checkpoint with 'state_dict', "
    "'hyper_parameters' and 'pytorch-lightning_version'); pretraining cannot start from bare network "
    "weights (there is no option for that)"
)


class PretrainCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose step-triggered save on an epoch's last batch waits for its validation.

    Lightning saves ``every_n_train_steps`` checkpoints in ``on_train_batch_end``, before the epoch's
    validation; resumed from such a checkpoint, Lightning 2.6 starts the next epoch and that
    validation never runs (so the best checkpoint never sees it). Saved in ``on_validation_end``
    instead (after a best checkpoint listed before this one), it resumes with nothing skipped, as
    Lightning's own checkpoints saved after a validation do. (Not ``on_train_epoch_end``: resumed from
    there with ``max_steps``, Lightning 2.6 counts the epoch twice and the sampler skips one.) When no
    validation runs after the epoch (``check_val_every_n_epoch``), it saves at once, as Lightning does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._after_validation: int | None = None  # batch index of a deferred step-triggered save

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch and validation_follows(trainer):
            self._after_validation = batch_idx
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._save_deferred(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save_deferred(trainer, pl_module)  # the validation did not run after all
        super().on_train_epoch_end(trainer, pl_module)

    def _save_deferred(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._after_validation is not None:
            batch_idx, self._after_validation = self._after_validation, None
            super().on_train_batch_end(trainer, pl_module, None, None, batch_idx)

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
        self._last_global_step_saved = checkpoint["global_step"]  # what was due at that step is saved


def validation_follows(trainer: Trainer) -> bool:
    """Whether a validation runs at the end of the current training epoch."""
    batches = trainer.num_val_batches
    batches = sum(batches) if isinstance(batches, list) else batches
    every = trainer.check_val_every_n_epoch
    return (
        trainer.enable_validation
        and bool(batches)
        and (every is None or (trainer.current_epoch + 1) % every == 0)
    )


def last_checkpoint_path(folder: str | Path) -> Path:
    """The ``last.ckpt`` that a :class:`ModelCheckpoint` with ``save_last`` writes in ``folder``."""
    return Path(folder) / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{ModelCheckpoint.FILE_EXTENSION}"


def resume_advice(trainer: Trainer) -> str:
    """What to do after a run diverged: the checkpoint ``--ckpt_path last`` resumes, or that none exists.

    Every checkpoint written holds finite tensors only (``ColorizationModule.on_save_checkpoint``).
    """
    folders = [
        Path(cb.dirpath)
        for cb in trainer.checkpoint_callbacks
        if isinstance(cb, ModelCheckpoint) and cb.save_last and cb.dirpath
    ]
    for last in map(last_checkpoint_path, folders):
        if last.is_file():
            step = read_checkpoint(last, mmap=True).get("global_step")
            return (
                f"the last good checkpoint is {last} (step {step}): lower the lr or check the data, "
                "then resume with --ckpt_path last"
            )
    where = (
        f"no last.ckpt in {', '.join(map(str, folders))}" if folders else "no checkpoint saves a last.ckpt"
    )
    return f"no good checkpoint exists ({where}): lower the lr or check the data, then start again"


def read_pretraining_checkpoint(
    path: str | Path, map_location: Any = "cpu", mmap: bool = False
) -> dict[str, Any]:
    """The checkpoint in ``path`` (:func:`~selfsup_color.checkpoints.read_checkpoint`) if pretraining wrote
    it, else a ``ValueError`` saying what the file holds and what is expected."""
    try:
        ckpt = read_checkpoint(path, map_location, mmap)
    except ValueError as error:
        raise ValueError(f"{error}; {EXPECTED}") from error
    if "arch" not in ckpt.get("hyper_parameters", {}):
        raise ValueError(
            f"{path} is a Lightning checkpoint of another module (no 'arch' hyperparameter); {EXPECTED}"
        )
    return ckpt


def plain(value: Any) -> Any:
    """``value`` with tuples as lists and namespaces as dicts, so that saved and parsed settings compare."""
    if isinstance(value, Namespace):
        value = value.as_dict()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def resume_settings(path: str | Path, saved: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The model settings a run resumed from checkpoint ``path`` (hyperparameters ``saved``) takes.

    ``given`` holds the settings the user set (config file or flags). Those that define the network
    or its outputs (``ColorizationModule.FIXED_HPARAMS``) must equal the checkpoint's, else a
    ``ValueError`` names each; others that differ (lr, schedule, ...) are honoured and logged. Returns
    the checkpoint's values of the settings not given (``lam=None`` means the pretext's default).
    """
    saved = {k: v for k, v in saved.items() if not k.startswith("_")}
    changed = {}
    for key, value in given.items():
        if key == "lam" and value is None:
            value = build_pretext(given.get("loss", saved.get("loss", "classification"))).default_lam
        if key in saved and plain(value) != plain(saved[key]):
            changed[key] = (saved[key], value)
    fixed = [key for key in changed if key in ColorizationModule.FIXED_HPARAMS]
    if fixed:
        clashes = "; ".join(f"{k}: checkpoint {changed[k][0]!r}, given {changed[k][1]!r}" for k in fixed)
        raise ValueError(
            f"resuming {path} with another network: {clashes}; these define the network and its outputs, "
            "so drop those settings to resume, or start a new run (no --ckpt_path, another "
            "--trainer.default_root_dir)"
        )
    if changed:
        changes = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
        rank_zero_info(f"Resuming {path} with changed settings: {changes}")
    return {k: v for k, v in saved.items() if k not in given}


def load_pretraining_module(path: str | Path, map_location: Any = "cpu") -> ColorizationModule:
    """The :class:`ColorizationModule` saved in ``path`` (its hyperparameters, then strict weights)."""
    ckpt = read_pretraining_checkpoint(path, map_location)
    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}
    hparams["compile_net"] = hparams["compile_targets"] = False
    module = ColorizationModule(**hparams)
    state = module.net.upgrade_state_dict(ckpt["state_dict"], prefix="net.")
    report = load_state_strict(module, state, str(path))
    rank_zero_info(f"Loaded {path} (step {ckpt.get('global_step')}): {report}")
    return module.eval()
