"""Real 2-process DDP on the CPU (gloo), launched through the CLI like a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import net_state, tiny_config, write_config, write_photos


def _fit(config: dict, path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "selfsup_color.cli", "fit", "--config", str(write_config(path, config))]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_two_ranks_step_like_one_process_on_the_global_batch(tmp_path: Path) -> None:
    """2 ranks x 4 images with SyncBatchNorm == 1 process x 8 images: same weights, same prior."""
    train, val = tmp_path / "train", tmp_path / "val"
    write_photos(train, 8)
    write_photos(val, 2, seed=1)
    # Adam's first step is lr * g / (|g| + eps): with the default eps 1e-8, weights whose gradient is
    # ~1e-8 would turn float rounding into visible differences, so this test uses a larger eps.
    common = {
        "trainer.max_steps": 1,
        "model.prior_images": 8,
        "model.adam_eps": 1e-3,
        "checkpoint.every_n_train_steps": 1,
    }
    single = tiny_config(train, val, tmp_path / "single", **common, **{"data.batch_size": 8})
    ddp = tiny_config(
        train,
        val,
        tmp_path / "ddp",
        **common,
        **{
            "data.batch_size": 4,
            "trainer.devices": 2,
            "trainer.strategy": "ddp",
            "model.sync_batchnorm": True,
        },
    )
    for config, name in ((single, "single"), (ddp, "ddp")):
        result = _fit(config, tmp_path / f"{name}.yaml")
        assert result.returncode == 0, result.stderr[-3000:]
    a = torch.load(tmp_path / "single" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(tmp_path / "ddp" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"] == 1
    assert torch.equal(a["state_dict"]["prior_probs"], b["state_dict"]["prior_probs"])
    one = net_state(tmp_path / "single" / "checkpoints" / "last.ckpt")
    two = net_state(tmp_path / "ddp" / "checkpoints" / "last.ckpt")
    assert one.keys() == two.keys() and any("running_mean" in k for k in one)
    worst = max(float((one[k].float() - two[k].float()).abs().max()) for k in one)
    assert worst < 1e-6, worst  # weights after the Adam step and BatchNorm running statistics
