"""Shared helpers for the benchmark scripts: timing and the built-in photo crops."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

BUILTIN_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle")


def time_call(
    fn: Callable[[], object], repeat: int, warmup: int = 1, sync: Callable[[], None] | None = None
) -> float:
    """Median wall time of ``fn`` in seconds over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def photo_crops(count: int, size: int, seed: int = 0) -> np.ndarray:
    """``count`` random ``size`` x ``size`` uint8 crops (N x H x W x 3) of scikit-image's colour photos."""
    from skimage import data

    photos = []
    for name in BUILTIN_PHOTOS:
        image = getattr(data, name)()
        photos.append(image[0] if isinstance(image, tuple) else image)
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        photo = photos[i % len(photos)]
        top = rng.integers(0, photo.shape[0] - size + 1)
        left = rng.integers(0, photo.shape[1] - size + 1)
        crops.append(photo[top : top + size, left : left + size, :3])
    return np.stack(crops)


def describe_machine() -> str:
    """One line naming the torch version, threads and device."""
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {gpu}"


def device_sync(device: torch.device) -> Callable[[], None]:
    """A function that waits for ``device``'s queued work (a no-op on the CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def fit_on_batch(
    module: object, batch: dict[str, torch.Tensor], steps: int, device: torch.device,
    callbacks: Sequence[object] = (), **trainer_options: object,
) -> list[float]:  # fmt: skip
    """Run ``steps`` real ``Trainer.fit`` steps of ``module`` on ``batch``; the start time of each step.

    No logger, checkpoints, progress bar or validation: what is left is the training step itself.
    """
    from lightning.pytorch import Callback, Trainer

    sync, starts = device_sync(device), []

    class BatchStarts(Callback):
        def on_train_batch_start(self, *_: object) -> None:
            sync()
            starts.append(time.perf_counter())

    trainer = Trainer(
        accelerator=device.type,
        devices=1,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[BatchStarts(), *callbacks],
        num_sanity_val_steps=0,
        limit_val_batches=0,
        **trainer_options,
    )
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader([batch] * steps, batch_size=None))
    return starts


def photo_batch(crop: int, batch: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A training batch as the data pipeline delivers it: uint8 photo crops, channels-last, no skips."""
    rgb = torch.from_numpy(photo_crops(batch, crop)).permute(0, 3, 1, 2).to(device)
    return {"rgb": rgb, "skipped": torch.zeros((), dtype=torch.int64, device=device)}
