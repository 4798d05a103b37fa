"""Shared helpers for the benchmark scripts: timing and the built-in photo crops."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

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
