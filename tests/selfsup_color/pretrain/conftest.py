"""Tiny real image folders and run configurations for training tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image


def write_photos(folder: Path, count: int, size: int = 48, seed: int = 0, gray: int = 0) -> list[Path]:
    """``count`` smooth, colourful PNGs (low-res colour fields upsampled), ``gray`` of them grayscale."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        field = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(field).resize((size, size), Image.Resampling.BICUBIC)
        if i < gray:
            image = image.convert("L")
        path = folder / f"img_{i:03d}.png"
        image.save(path)
        paths.append(path)
    return paths


@pytest.fixture()
def photo_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A train folder of 12 photos (one grayscale) and a val folder of 4."""
    train, val = tmp_path / "data" / "train", tmp_path / "data" / "val"
    write_photos(train, 12, gray=1)
    write_photos(val, 4, seed=1)
    return train, val


def tiny_config(train: Path, val: Path, root: Path, **overrides: Any) -> dict[str, Any]:
    """A complete ``selfsup-color fit`` config: eccv16 at width 1/16 on 32 px crops, a few steps."""
    config: dict[str, Any] = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_steps": 4,
            "default_root_dir": str(root),
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "deterministic": True,
        },
        "model": {
            "arch": "eccv16",
            "arch_options": {"width": 0.0625},
            "lr": 1e-3,
            "prior_images": 16,
            "log_images_every_n_steps": 2,
            "num_log_images": 2,
        },
        "data": {
            "train": str(train),
            "val": str(val),
            "resize": 40,
            "crop": 32,
            "batch_size": 4,
            "num_workers": 0,
        },
        "checkpoint": {"every_n_train_steps": 2},
    }
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[key] = value
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def net_state(ckpt: Path) -> dict[str, torch.Tensor]:
    """The network weights stored in a Lightning checkpoint."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("net.")}
