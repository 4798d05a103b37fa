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
    """2 ranks x 4 images with global BatchNorm == 1 process x 8 images: same weights, same prior.

    Both runs are in float64 ("64-true"). In float32 they differ by up to ~5e-5 in the weights, and
    that is rounding, not DDP: they sum in different orders (a batch of 8, or two of 4 plus an
    all-reduce). On these photos, rounding moves one ReLU input out of 153,600 across zero in the
    single-process run; that unit's gradient path switches off and conv1's weight gradient moves by
    0.6% against float64, while the DDP run's gradient is within 2.4e-5 of float64. Which run flips
    a unit depends on the photos' bytes: over 8 photo sets (seeds 0-7) a float32 bound of 1e-6
    failed on 4 (gaps 3e-7 to 4.3e-5, Adam eps 1e-3). In float64 the gaps were 1.2e-12 to 6.2e-12
    with Adam's default eps; a real fault (BatchNorm statistics per rank: 4.2e-3) is far above 1e-9.
    """
    train, val = tmp_path / "train", tmp_path / "val"
    write_photos(train, 8)
    write_photos(val, 2, seed=1)
    common = {
        "trainer.max_steps": 1,
        "trainer.precision": "64-true",
        "model.prior_images": 8,
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
    assert all(v.dtype in (torch.float64, torch.int64) for v in one.values())
    worst = max(float((one[k].double() - two[k].double()).abs().max()) for k in one)
    assert worst < 1e-9, worst  # weights after the Adam step and BatchNorm running statistics
