"""Generated test images: textured colour pictures and files in every mode the loaders handle."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile


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


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels but that holds one row of data.

    Opening it reads the header only; decoding it would allocate the whole image (and then fail).
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    row = zlib.compress(b"\0" * (1 + 3 * width))
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", row) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    return path


def decoded_files(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, record the file name of every Pillow decode (``ImageFile.load``) of a file in this
    process (images opened from memory are left out)."""
    decoded: list[str] = []
    load = ImageFile.ImageFile.load

    def recording_load(image: ImageFile.ImageFile) -> object:
        if getattr(image, "filename", ""):
            decoded.append(str(image.filename))
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    return decoded
