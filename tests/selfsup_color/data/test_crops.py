"""Crops against torchvision's resize-then-crop: same geometry, same picture, same distribution.

Tolerance: 1 grey level for files decoded at full size. Pillow receives the crop box as float32,
so box edges and scale carry a ~1e-7 relative error; its 22-bit fixed-point filter weights then
differ by one unit in some taps, which moves some rounded outputs by one. JPEGs at least twice the
needed size are decoded at reduced scale (DCT scaling, a different low-pass filter): there we
bound the mean and largest difference on a smooth picture instead.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from selfsup_color.data import centre_crop, random_crop, read_crop, resized_size
from selfsup_color.data.crops import check_sizes

from .images import picture, save


def reference_crop(path: Path, resize: int, top: int, left: int, size: int, flip: bool) -> np.ndarray:
    """torchvision's recipe at a given position: Resize(resize) then crop (then flip)."""
    image = TF.crop(TF.resize(Image.open(path).convert("RGB"), resize), top, left, size, size)
    return np.asarray(TF.hflip(image) if flip else image, dtype=np.int16)


@pytest.mark.parametrize(
    ("width", "height", "resize", "size"),
    [(150, 110, 96, 64), (101, 163, 96, 80), (23, 17, 40, 32), (60, 400, 48, 48)],
    ids=["landscape", "portrait", "upscaled", "tall"],
)
def test_random_crops_equal_resize_then_crop(
    tmp_path: Path, width: int, height: int, resize: int, size: int
) -> None:
    path = save(tmp_path / "x.png", picture(width, height))
    flips = set()
    for index in range(12):
        crop = random_crop(width, height, resize, size, random.Random(f"0:0:{index}"))
        ours = np.asarray(read_crop(path, resize, size, random.Random(f"0:0:{index}")), dtype=np.int16)
        ref = reference_crop(path, resize, crop.top, crop.left, size, crop.flip)
        assert ours.shape == (size, size, 3)
        assert np.abs(ours - ref).max() <= 1, (index, crop)
        flips.add(crop.flip)
    assert flips == {False, True}


def test_centre_crop_equals_torchvision(tmp_path: Path) -> None:
    for width, height in [(150, 110), (111, 150), (97, 97)]:
        path = save(tmp_path / f"{width}x{height}.png", picture(width, height))
        ref = TF.center_crop(TF.resize(Image.open(path), 72), [56, 56])
        diff = np.asarray(read_crop(path, 72, 56), dtype=np.int16) - np.asarray(ref, dtype=np.int16)
        assert np.abs(diff).max() <= 1


def test_large_jpeg_is_decoded_reduced_but_looks_the_same(tmp_path: Path) -> None:
    path = save(tmp_path / "big.jpg", picture(1000, 700, smooth=True), quality=95)
    for index in range(4):
        rng = random.Random(f"0:0:{index}")
        crop = random_crop(1000, 700, 160, 128, random.Random(f"0:0:{index}"))
        diff = np.asarray(read_crop(path, 160, 128, rng), dtype=np.int16) - reference_crop(
            path, 160, crop.top, crop.left, 128, crop.flip
        )
        assert np.abs(diff).mean() < 1.0 and np.abs(diff).max() <= 8


@pytest.mark.parametrize("shape", [(500, 375), (375, 500), (333, 500), (7, 3), (1, 1000), (256, 256)])
def test_resized_size_rounds_like_torchvision(shape: tuple[int, int]) -> None:
    width, height = shape
    for resize in (16, 256 if max(shape) < 100 * min(shape) else 33):  # keep the reference image small
        expected = TF.resize(torch.zeros(1, height, width), resize, antialias=False).shape[1:]
        assert resized_size(width, height, resize) == (expected[1], expected[0])


def test_crop_positions_are_uniform_and_flips_fair() -> None:
    """Over 6000 draws every position occurs, near-equally often (chi-square), and half are flipped."""
    draws = [random_crop(500, 375, 256, 176, random.Random(f"7:0:{i}")) for i in range(6000)]
    assert {d.resized for d in draws} == {(341, 256)}
    lefts = np.bincount([d.left for d in draws], minlength=341 - 176 + 1)
    tops = np.bincount([d.top for d in draws], minlength=256 - 176 + 1)
    assert len(lefts) == 166 and len(tops) == 81 and lefts.min() > 0 and tops.min() > 0
    for counts in (lefts, tops):
        expected = len(draws) / len(counts)
        chi2 = ((counts - expected) ** 2 / expected).sum()
        dof = len(counts) - 1
        assert chi2 < dof + 5 * np.sqrt(2 * dof)  # 5 sigma above the mean of the chi-square law
    assert abs(np.mean([d.flip for d in draws]) - 0.5) < 0.03


def test_centre_crop_geometry_and_box() -> None:
    crop = centre_crop(500, 375, 256, 176)
    assert (crop.resized, crop.left, crop.top, crop.flip) == ((341, 256), 82, 40, False)
    left, top, right, bottom = crop.box(500, 375)
    sx, sy = 500 / 341, 375 / 256
    assert np.allclose([left, top, right, bottom], [82 * sx, 40 * sy, 258 * sx, 216 * sy])
    edge = random_crop(500, 375, 256, 256, random.Random(0))  # full height: box ends at the edge
    assert edge.box(250, 188)[3] <= 188


def test_check_sizes() -> None:
    check_sizes(256, 256)
    for bad in [(176, 256), (0, 0), (256, 0), (256.0, 176), (True, 1)]:
        with pytest.raises(ValueError, match="resize, crop"):
            check_sizes(*bad)  # type: ignore[arg-type]
