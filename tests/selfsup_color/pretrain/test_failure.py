"""Failure modes of long runs: SIGKILL mid-run, unreadable images, all-broken batches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from selfsup_color.pretrain.cli import run_lightning_cli

from .conftest import tiny_config, write_config


def _step(ckpt: Path) -> int:
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])


@pytest.mark.slow
def test_sigkill_loses_only_the_steps_since_the_last_checkpoint(photo_dirs, tmp_path: Path) -> None:
    root = tmp_path / "run"
    config = tiny_config(
        *photo_dirs, root, **{"trainer.max_steps": 10_000, "checkpoint.every_n_train_steps": 3}
    )
    path = write_config(tmp_path / "run.yaml", config)
    cmd = [sys.executable, "-m", "selfsup_color.cli", "fit", "--config", str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = root / "checkpoints" / "last.ckpt"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if last.is_file() and _step(last) >= 6:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint at step 6 within 3 minutes")
        time.sleep(0.5)  # let it run on past the checkpoint, maybe into the next write
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    saved = _step(last)  # a whole checkpoint: the write is atomic
    assert saved >= 6 and saved % 3 == 0
    cli = run_lightning_cli(
        ["fit", "--config", str(path), "--trainer.max_steps", str(saved + 2), "--ckpt_path", "last"]
    )
    assert cli.trainer.global_step == saved + 2


def test_unreadable_images_are_skipped_counted_and_all_broken_batches_step(
    photo_dirs, tmp_path: Path
) -> None:
    train, val = photo_dirs
    (train / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (train / "notes.png").write_text("a text file with an image name")
    root = tmp_path / "run"
    config = tiny_config(train, val, root, **{"trainer.max_steps": 4, "trainer.log_every_n_steps": 1})
    with pytest.warns(UserWarning, match=r"truncated\.jpg"):
        cli = run_lightning_cli(["fit", "--config", str(write_config(tmp_path / "run.yaml", config))])
    assert float(cli.trainer.callback_metrics["train/skipped_images"]) == 2  # one epoch of 14 files
    module = cli.model
    empty = {"rgb": torch.empty(0, 3, 32, 32, dtype=torch.uint8), "skipped": torch.tensor(4)}
    loss = module.training_step(empty, 0)
    assert float(loss) == 0.0 and loss.requires_grad
