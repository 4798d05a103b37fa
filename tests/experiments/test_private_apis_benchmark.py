"""The private-API benchmark times like against like: each old private path gives its replacement's output."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from experiments.benchmarks.private_apis import (
    private_decode_jpeg,
    private_pillow_crop,
    private_resample,
    public_decode_jpeg,
    timm_pair,
)
from selfsup_color.data.crops import random_crop
from selfsup_color.data.decode import pillow_crop
from selfsup_color.data.resample import resample_crop


def photo(width: int, height: int) -> np.ndarray:
    """A smooth colour picture (JPEG-friendly), uint8 H x W x 3."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1).astype(
        np.uint8
    )


def test_decoders_and_resamplers_agree(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(photo(500, 375)).save(buffer, "JPEG", quality=90)
    data = torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
    image = private_decode_jpeg(data)
    assert torch.equal(image, public_decode_jpeg(data))
    rng = random.Random(0)
    for _ in range(5):  # downscaled crops: the old call was right there
        crop = random_crop(500, 375, 256, 176, rng)
        assert torch.equal(private_resample((image, crop)), resample_crop(image, crop))


def test_partial_and_whole_pillow_decodes_agree(tmp_path: Path) -> None:
    path = tmp_path / "p.jpg"
    Image.fromarray(photo(300, 220)).save(path, quality=90)
    for resize, size in [(200, 120), (100, 60)]:  # the second decoded reduced by draft
        for seed in range(4):
            old = private_pillow_crop(str(path), resize, size, random.Random(seed))
            assert torch.equal(old, pillow_crop(path, resize, size, random.Random(seed)))


def test_timm_sides_give_the_same_features() -> None:
    private, public, (x,) = timm_pair(1, 64)["timm"]
    old, new = private(x), public(x)
    assert len(old) == len(new) == 3
    assert all(torch.equal(a, b) for a, b in zip(old, new, strict=True))
