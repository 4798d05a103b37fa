"""wandb is offline without a key, and its failures never stop a run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lightning.pytorch.loggers import WandbLogger

from selfsup_color.pretrain.loggers import SafeWandbLogger, wandb_offline_by_default


@pytest.mark.parametrize(
    ("env", "netrc", "offline"),
    [
        ({}, False, True),
        ({}, True, False),
        ({"WANDB_API_KEY": "x"}, False, False),
        ({"WANDB_MODE": "offline", "WANDB_API_KEY": "x"}, False, True),
        ({"WANDB_MODE": "online"}, False, False),
    ],
)
def test_offline_unless_a_key_or_mode_says_otherwise(
    env, netrc, offline, tmp_path: Path, monkeypatch
) -> None:
    for key in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", str(tmp_path))
    if netrc:
        (tmp_path / ".netrc").write_text("machine api.wandb.ai login user password key\n")
    assert wandb_offline_by_default() is offline


def test_logging_failures_warn_once_and_training_goes_on(tmp_path: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionError("network gone")

    monkeypatch.setattr(WandbLogger, "log_metrics", broken)
    monkeypatch.setattr(WandbLogger, "log_image", broken)
    logger = SafeWandbLogger(save_dir=str(tmp_path), offline=True)
    with pytest.warns(RuntimeWarning, match="wandb log_metrics failed .*network gone.*training goes on"):
        logger.log_metrics({"train/loss": 1.0}, step=0)
    logger.log_metrics({"train/loss": 1.0}, step=1)  # the second failure is silent
    with pytest.warns(RuntimeWarning, match="wandb log_image failed"):
        logger.log_image("grid", [], step=0)


def test_wandb_mode_disabled_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    logger = SafeWandbLogger(save_dir=str(tmp_path))
    logger.log_metrics({"train/loss": 1.0}, step=0)
    logger.log_hyperparams({"lr": 0.1})
    logger.finalize("success")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [] and os.environ["WANDB_MODE"] == "disabled"
