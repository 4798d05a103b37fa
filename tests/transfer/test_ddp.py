"""Transfer under real 2-process DDP on the CPU (gloo), launched through ``selfsup-transfer``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from transfer.cli import main
from transfer.report import read_results

from .test_classification import OPTIONS, image_folder


def transfer(task: str, config: dict, path: Path) -> subprocess.CompletedProcess:
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "transfer.cli", task, "--config", str(path)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_two_ranks_count_every_image_once_and_train(tmp_path: Path) -> None:
    train, val = image_folder(tmp_path / "train", 6), image_folder(tmp_path / "val", 5)
    base = {
        "dataset": "shades",
        "encoder": {"init": "random", "arch": "eccv16", "arch_options": OPTIONS, "seed": 3},
        "baselines": [],
        "data": {"train": str(train), "val": str(val), "resize": 32, "crop": 32, "batch_size": 4,
                 "num_workers": 0},
        "probe": {"pool_dims": 300, "cache": "disk", "optim": {"lr": 0.05}},
    }  # fmt: skip
    scores = {}
    for name, trainer in {
        "single": {"max_epochs": 0, "accelerator": "cpu", "devices": 1},
        "ddp": {"max_epochs": 0, "accelerator": "cpu", "devices": 2, "strategy": "ddp"},
        "ddp_train": {"max_epochs": 2, "accelerator": "cpu", "devices": 2, "strategy": "ddp"},
    }.items():
        config = {**base, "out_dir": str(tmp_path / name), "trainer": {**trainer, "logger": False}}
        if name == "single":
            (tmp_path / "single.yaml").write_text(yaml.safe_dump(config))
            assert main(["linear", "--config", str(tmp_path / "single.yaml")]) == 0
        else:
            result = transfer("linear", config, tmp_path / f"{name}.yaml")
            assert result.returncode == 0, result.stderr[-3000:]
        scores[name] = read_results(tmp_path / name / "linear_shades.json")[0].metrics
    # Untrained probes: the same predictions, so equal accuracy only if each val image counts once.
    assert scores["ddp"] == scores["single"]
    features = tmp_path / "ddp_train" / "encoder" / "features"
    assert sorted(p.name for p in features.iterdir()) == ["rank0", "rank1"]
    assert (features / "rank1" / "val-conv7.npy").is_file()
    assert all(0.0 <= m["top1"] <= 1.0 for m in scores["ddp_train"].values())
