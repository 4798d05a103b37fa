"""Resuming with ``--ckpt_path``: only our own checkpoints, loaded safely, with the settings the user gave."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from selfsup_color.pretrain.checkpoint_io import AtomicCheckpointIO
from selfsup_color.pretrain.cli import run_lightning_cli
from selfsup_color.pretrain.module import ColorizationModule

from .conftest import tiny_config, write_config


class Payload:
    """Unpickled without ``weights_only``, it creates the file ``marker`` (code a checkpoint could run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return open, (str(self.marker), "w")


def first_run(photo_dirs: tuple[Path, Path], tmp_path: Path, **overrides: Any) -> tuple[Path, Path]:
    """A 2-step tiny run; returns its config and its ``last.ckpt``."""
    root = tmp_path / "run"
    config = tiny_config(*photo_dirs, root, **{"trainer.max_steps": 2, **overrides})
    path = write_config(tmp_path / "run.yaml", config)
    run_lightning_cli(["fit", "--config", str(path)])
    return path, root / "checkpoints" / "last.ckpt"


def test_ckpt_path_last_with_nothing_to_resume_fails_naming_the_folder(photo_dirs, tmp_path: Path) -> None:
    root = tmp_path / "run"
    path = write_config(tmp_path / "run.yaml", tiny_config(*photo_dirs, root))
    with pytest.raises(FileNotFoundError, match=f"no last.ckpt in {root / 'checkpoints'}"):
        run_lightning_cli(["fit", "--config", str(path), "--ckpt_path", "last"])
    assert not (root / "prior").exists()  # nothing trained


def test_a_pickle_payload_never_runs(photo_dirs, tmp_path: Path) -> None:
    root = tmp_path / "run"
    marker = tmp_path / "marker"
    last = root / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "payload": Payload(marker)}, last)
    torch.load(last, weights_only=False)  # the payload is real: unsafe loading runs it
    assert marker.is_file()
    marker.unlink()
    path = write_config(tmp_path / "run.yaml", tiny_config(*photo_dirs, root))
    with pytest.raises(ValueError, match=r"--weights_only false is refused.*convert it first"):
        run_lightning_cli(["fit", "--config", str(path), "--ckpt_path", "last", "--weights_only", "false"])
    unsafe = (
        rf"cannot read checkpoint {re.escape(str(last))}: it holds Python objects \(io.open\).*fit` wrote"
    )
    with pytest.raises(ValueError, match=unsafe):
        run_lightning_cli(["fit", "--config", str(path), "--ckpt_path", "last"])
    with pytest.raises(ValueError, match="--weights_only false is refused"):
        run_lightning_cli(
            ["validate", "--config", str(path), "--ckpt_path", str(last), "--weights_only", "false"]
        )
    assert not marker.exists()


def test_foreign_checkpoints_are_named_with_what_is_expected(photo_dirs, tmp_path: Path) -> None:
    config = tiny_config(*photo_dirs, tmp_path / "run")
    path = write_config(tmp_path / "run.yaml", config)
    module = ColorizationModule(**config["model"])
    bare = tmp_path / "weights.pt"
    torch.save(module.net.state_dict(), bare)
    with pytest.raises(
        ValueError, match=r"bare state dict \(\d+ tensors.*`selfsup-color fit` wrote.*no option"
    ):
        run_lightning_cli(["fit", "--config", str(path), "--ckpt_path", str(bare)])
    no_trainer = tmp_path / "module.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, no_trainer)
    with pytest.raises(ValueError, match="no Lightning training state"):
        run_lightning_cli(["fit", "--config", str(path), "--ckpt_path", str(no_trainer)])


def test_resume_keeps_the_network_and_honours_new_training_settings(
    photo_dirs, tmp_path: Path, caplog
) -> None:
    config, last = first_run(photo_dirs, tmp_path)
    saved = torch.load(last, weights_only=True)["hyper_parameters"]
    assert saved["arch_options"] == {"width": 0.0625} and saved["lr"] == 1e-3
    wider = [
        "fit",
        "--config",
        str(config),
        "--ckpt_path",
        str(last),
        "--model.arch_options",
        "{width: 0.125}",
    ]
    with pytest.raises(
        ValueError, match=r"arch_options: checkpoint \{'width': 0.0625\}, given \{'width': 0.125\}.*drop"
    ):
        run_lightning_cli(wider)
    with pytest.raises(ValueError, match=r"loss: checkpoint 'classification', given 'regression'"):
        run_lightning_cli([*wider[:5], "--model.loss", "regression"])

    caplog.set_level(logging.INFO)
    cli = run_lightning_cli(
        [
            "fit",
            "--config",
            str(config),
            "--ckpt_path",
            str(last),
            "--model.lr",
            "1e-4",
            "--model.lam",
            "null",  # the pretext's default, 0.5 as in the checkpoint: no change
            "--trainer.max_steps",
            "3",
        ]
    )
    assert f"Resuming {last} with changed settings: lr 0.001 -> 0.0001\n" in caplog.text
    assert cli.trainer.global_step == 3
    assert cli.model.hparams.lr == 1e-4
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-4)

    # settings not given come from the checkpoint (here: the whole model section)
    bare = tiny_config(*photo_dirs, tmp_path / "run", **{"trainer.max_steps": 4})
    del bare["model"]
    cli = run_lightning_cli(
        ["fit", "--config", str(write_config(tmp_path / "bare.yaml", bare)), "--ckpt_path", "last"]
    )
    assert cli.model.hparams.arch_options == {"width": 0.0625} and cli.model.hparams.lr == 1e-4
    assert cli.trainer.global_step == 4


def test_an_epoch_end_checkpoint_resumes_with_that_epochs_validation(
    photo_dirs, tmp_path: Path, monkeypatch
) -> None:
    """Epochs have 3 batches; a kill right after the step-3 ``last.ckpt`` is written, then a resume.

    Together the two runs validate after step 3 and step 6, and train with the losses of one straight run.
    """
    validated: list[int] = []
    losses: dict[str, dict[int, float]] = {"straight": {}, "resumed": {}}
    record = losses["straight"]
    step = ColorizationModule.training_step
    end = ColorizationModule.on_validation_epoch_end

    def training_step(self: ColorizationModule, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = step(self, batch, batch_idx)
        record[self.global_step] = float(loss)
        return loss

    def on_validation_epoch_end(self: ColorizationModule) -> None:
        validated.append(self.global_step)
        end(self)

    monkeypatch.setattr(ColorizationModule, "training_step", training_step)
    monkeypatch.setattr(ColorizationModule, "on_validation_epoch_end", on_validation_epoch_end)
    overrides = {"trainer.max_steps": 6, "checkpoint.every_n_train_steps": 3}
    straight = tiny_config(*photo_dirs, tmp_path / "straight", **overrides)
    run_lightning_cli(["fit", "--config", str(write_config(tmp_path / "straight.yaml", straight))])
    assert validated == [3, 6]

    class Killed(BaseException):
        pass

    save = AtomicCheckpointIO.save_checkpoint

    def save_then_die(
        self: AtomicCheckpointIO, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        save(self, checkpoint, path, storage_options)
        if checkpoint["global_step"] == 3 and Path(path).name == "last.ckpt":
            raise Killed

    validated.clear()
    record = losses["resumed"]
    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", save_then_die)
    config = write_config(tmp_path / "run.yaml", tiny_config(*photo_dirs, tmp_path / "run", **overrides))
    with pytest.raises(Killed):
        run_lightning_cli(["fit", "--config", str(config)])
    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", save)
    cli = run_lightning_cli(["fit", "--config", str(config), "--ckpt_path", "last"])
    assert validated == [3, 6] and cli.trainer.global_step == 6
    assert losses["resumed"] == pytest.approx(losses["straight"], rel=1e-6, abs=1e-7)
    best = cli.trainer.checkpoint_callback
    assert best.monitor == "val/rebalanced_auc" and len(best.best_k_models) == 1
