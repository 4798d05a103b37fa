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
from selfsup_color.pretrain.module import NonFiniteLossError

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


def finite_everywhere(ckpt: Path) -> bool:
    """Whether every floating-point weight, buffer and optimiser state in ``ckpt`` is finite."""
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    tensors = list(saved["state_dict"].values())
    for optimizer in saved["optimizer_states"]:
        tensors += [v for state in optimizer["state"].values() for v in state.values()]
    return all(torch.isfinite(t).all() for t in tensors if t.is_floating_point())


def test_a_huge_lr_writes_no_checkpoint_and_says_none_exists(photo_dirs, tmp_path: Path) -> None:
    """The issue's case: ``--model.lr 1e6 --checkpoint.every_n_train_steps 2`` from scratch."""
    root = tmp_path / "run"
    config = tiny_config(*photo_dirs, root, **{"model.lr": 1e6, "trainer.max_steps": 10})
    folder = root / "checkpoints"
    with pytest.raises(NonFiniteLossError, match=f"no good checkpoint exists \\(no last.ckpt in {folder}\\)"):
        run_lightning_cli(["fit", "--config", str(write_config(tmp_path / "run.yaml", config))])
    assert not (folder / "last.ckpt").exists()


def test_after_a_divergence_last_ckpt_is_finite_named_and_resumes(photo_dirs, tmp_path: Path) -> None:
    """Two good steps, then the issue's lr 1e6 (checkpoints every 2 steps), then the advised recovery."""
    root = tmp_path / "run"
    path = write_config(tmp_path / "run.yaml", tiny_config(*photo_dirs, root, **{"trainer.max_steps": 2}))
    run_lightning_cli(["fit", "--config", str(path)])
    resume = ["fit", "--config", str(path), "--ckpt_path", "last"]
    with pytest.raises(NonFiniteLossError) as error:
        run_lightning_cli([*resume, "--model.lr", "1e6", "--trainer.max_steps", "12"])
    last = root / "checkpoints" / "last.ckpt"
    assert finite_everywhere(last) and _step(last) == 2
    assert f"the last good checkpoint is {last} (step 2)" in str(error.value)
    cli = run_lightning_cli([*resume, "--model.lr", "1e-3", "--trainer.max_steps", "4"])
    assert cli.trainer.global_step == 4 and _step(last) == 4 and finite_everywhere(last)
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])


def test_a_run_removes_temporary_files_of_killed_writes_only(photo_dirs, tmp_path: Path) -> None:
    """Stale: its writer is gone, or it was last written before the run started. Live writers' stay."""
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    later, earlier = time.time() + 600, time.time() - 600
    files = {
        "dead writer": (folder / f".last.ckpt.{gone.pid}.{'a' * 32}.partial", later),
        "old file": (folder / f".last.ckpt.{os.getpid()}.{'b' * 32}.partial", earlier),
        "live writer": (folder / f".last.ckpt.{os.getpid()}.{'c' * 32}.partial", later),
        "not ours": (folder / ".notes.partial", earlier),
    }
    for path, stamp in files.values():
        path.write_bytes(b"half a checkpoint")
        os.utime(path, (stamp, stamp))
    config = tiny_config(*photo_dirs, tmp_path / "run", **{"trainer.max_steps": 1})
    run_lightning_cli(["fit", "--config", str(write_config(tmp_path / "run.yaml", config))])
    assert {name for name, (path, _) in files.items() if path.exists()} == {"live writer", "not ours"}


def test_an_unwritable_run_folder_fails_before_training(photo_dirs, tmp_path: Path) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    root = blocker / "run"
    config = tiny_config(*photo_dirs, root)
    del config["trainer"]["logger"]  # the default wandb logger must not fall back to a temporary folder
    with pytest.raises(OSError, match=f"cannot write to the run folder {root} .*default_root_dir"):
        run_lightning_cli(["fit", "--config", str(write_config(tmp_path / "run.yaml", config))])
