"""Generated test images: textured colour pictures and files in every mode the loaders handle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def picture(width: int, height: int, seed: int = 0, smooth: bool = False) -> np.ndarray:
    """H x W x 3 uint8: colour gradients, plus per-pixel noise unless ``smooth``.

    Noise is the hardest case for resampling comparisons: every filter tap matters.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack(
        [
            128 + 100 * np.sin(x / 17.0 + seed),
            128 + 100 * np.cos(y / 11.0 - seed),
            128 + 60 * np.sin((x + y) / 23.0),
        ],
        axis=-1,
    )
    if not smooth:
        base += np.random.default_rng(seed).normal(0, 40, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def save(path: Path, image: np.ndarray | Image.Image, **options: object) -> Path:
    """Write ``image`` to ``path`` (format from the suffix), creating folders; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    (Image.fromarray(image) if isinstance(image, np.ndarray) else image).save(path, **options)
    return path


def folder_of_pictures(root: Path, count: int, size: tuple[int, int] = (48, 40)) -> list[Path]:
    """``count`` small PNG pictures under ``root`` (two subfolders), sorted."""
    return sorted(save(root / f"class{i % 2}" / f"{i:03d}.png", picture(*size, seed=i)) for i in range(count))
