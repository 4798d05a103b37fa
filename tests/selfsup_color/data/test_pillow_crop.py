"""The Pillow path of ``read_crop`` (``decode.pillow_crop``): every file without a tensor decoder, and
JPEGs decoded reduced. It shows the picture of torchvision's recipe, and a broken file raises."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torchvision.transforms.functional as TF
from PIL import Image

from selfsup_color.data import random_crop, read_crop
from selfsup_color.data.decode import pillow_crop

from .images import picture, save


def torchvision_crop(path: Path, resize: int, size: int, seed: str) -> np.ndarray:
    """The crop ``pillow_crop`` draws for ``seed`` by torchvision's recipe: resize the whole, crop, flip."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    crop = random_crop(*rgb.size, resize, size, random.Random(seed))
    out = TF.crop(TF.resize(rgb, list(crop.resized[::-1])), crop.top, crop.left, size, size)
    return np.asarray(TF.hflip(out) if crop.flip else out, dtype=np.int16)


@pytest.mark.parametrize("kind", ["4:4:4", "4:2:0", "progressive", "gray", "png"])
def test_crops_show_torchvisions_picture(tmp_path: Path, kind: str) -> None:
    pixels = picture(300, 220)
    path = {
        "4:4:4": lambda: save(tmp_path / "s.jpg", pixels, quality=90, subsampling=0),
        "4:2:0": lambda: save(tmp_path / "b.jpg", pixels, quality=90),
        "progressive": lambda: save(tmp_path / "p.jpg", pixels, progressive=True),
        "gray": lambda: save(tmp_path / "g.jpg", Image.fromarray(pixels).convert("L")),
        "png": lambda: save(tmp_path / "p.png", pixels),
    }[kind]()
    for resize, size in [(200, 120), (128, 96), (220, 20)]:  # none reduced by draft (< 2x)
        for index in range(4):
            seed = f"0:0:{index}"
            ours = pillow_crop(path, resize, size, random.Random(seed)).numpy().astype(np.int16)
            diff = np.abs(ours - torchvision_crop(path, resize, size, seed))
            # Pillow's box resample rounds a few weights unlike a whole resize: 2 grey levels at most.
            assert diff.max() <= 2 and (diff <= 1).mean() > 0.999, (resize, size, seed)
            assert (diff == 0).mean() > 0.95, (resize, size, seed)


def test_a_truncated_file_raises(tmp_path: Path) -> None:
    whole = save(tmp_path / "whole.jpg", picture(200, 300), quality=90)
    data = whole.read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 5])  # ends in the top fifth of the rows
    for read in (pillow_crop, read_crop):  # read_crop: the tensor decoder fails, then Pillow raises
        with pytest.raises(OSError, match="truncated"):
            read(truncated, 200, 100, random.Random("0:0:0"))
