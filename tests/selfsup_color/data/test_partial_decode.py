"""Partial JPEG decoding (only the rows a crop needs): the same pixels as a full decode, or a fallback.

These test the Pillow path (``decode.pillow_crop``); ``read_crop`` takes it for JPEGs decoded reduced.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from selfsup_color.data import decode, random_crop, read_crop
from selfsup_color.data.decode import pillow_crop

from .images import picture, save


def full_crop(path: Path, resize: int, size: int, seed: str) -> np.ndarray:
    """The crop ``read_crop`` draws for ``seed``, resampled from a full decode."""
    with Image.open(path) as image:
        crop = random_crop(*image.size, resize, size, random.Random(seed))
        return np.asarray(decode._crop_image(image, crop, 1, partial=False))


@pytest.mark.parametrize("subsampling", [0, 2], ids=["4:4:4", "4:2:0"])
def test_crops_are_bit_identical_to_full_decodes(tmp_path: Path, subsampling: int) -> None:
    path = save(tmp_path / "p.jpg", picture(300, 220), quality=90, subsampling=subsampling)
    partial_rows = []
    for resize, size in [(200, 120), (128, 96), (60, 60), (220, 20)]:
        for index in range(6):
            seed = f"0:0:{index}"
            ours = np.asarray(pillow_crop(path, resize, size, random.Random(seed)))
            np.testing.assert_array_equal(ours, full_crop(path, resize, size, seed))
            with Image.open(path) as image:
                crop = random_crop(*image.size, resize, size, random.Random(seed))
                image.draft("RGB", crop.resized)
                partial_rows.append(decode.rows_needed(crop.box(*image.size), size, image.size[1]))
    assert min(partial_rows) < 220 // 2  # the comparison did cover crops well above the bottom


def test_decoded_rows_equal_the_full_decode_and_the_rest_stays_black(tmp_path: Path) -> None:
    path = save(tmp_path / "p.jpg", picture(120, 200), quality=85)
    with Image.open(path) as image:
        assert decode.decode_top_rows(image, 77)
        partial = np.asarray(image)
    whole = np.asarray(Image.open(path).convert("RGB"))
    assert partial.shape == whole.shape  # the size is kept: resampling depends on it
    np.testing.assert_array_equal(partial[:77], whole[:77])
    assert not partial[96:].any()  # beyond the last decoded block row nothing was written


def test_only_unloaded_baseline_jpegs_are_decoded_partially(tmp_path: Path) -> None:
    pixels = picture(64, 64)
    cases = {
        "progressive": save(tmp_path / "prog.jpg", pixels, progressive=True),
        "png": save(tmp_path / "p.png", pixels),
        "cmyk": save(tmp_path / "cmyk.jpg", Image.fromarray(pixels).convert("CMYK")),
    }
    for name, path in cases.items():
        with Image.open(path) as image:
            assert not decode.decode_top_rows(image, 20), name
    with Image.open(save(tmp_path / "b.jpg", pixels)) as image:
        assert not decode.decode_top_rows(image, 64)  # every row needed: an ordinary decode
        assert decode.decode_top_rows(image, 63)
    progressive = np.asarray(pillow_crop(cases["progressive"], 64, 32, random.Random("0:0:0")))
    np.testing.assert_array_equal(progressive, full_crop(cases["progressive"], 64, 32, "0:0:0"))


def test_a_decode_that_stops_early_falls_back_to_the_full_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A flat JPEG decodes to exactly its colour, so taking that colour as the sentinel makes every
    # partial decode look as if its last row never arrived.
    path = save(tmp_path / "flat.jpg", np.full((120, 90, 3), (90, 140, 200), np.uint8), quality=100)
    colour = tuple(int(v) for v in np.asarray(Image.open(path))[60, 45])
    assert (np.asarray(Image.open(path)) == colour).all()
    monkeypatch.setattr(decode, "PARTIAL_SENTINEL", colour)
    with Image.open(path) as image, pytest.raises(decode.PartialDecodeError, match=r"flat\.jpg"):
        decode.decode_top_rows(image, 50)
    crop = np.asarray(pillow_crop(path, 90, 40, random.Random("0:0:1")))
    assert (crop == colour).all()


def test_a_file_broken_above_the_crop_still_raises(tmp_path: Path) -> None:
    whole = save(tmp_path / "whole.jpg", picture(200, 300), quality=90)
    data = whole.read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 5])  # ends in the top fifth of the rows
    with Image.open(truncated) as image, pytest.raises(OSError, match="truncated"):
        decode.decode_top_rows(image, 200)
    for read in (pillow_crop, read_crop):  # read_crop: the tensor decoder fails, then Pillow raises
        with pytest.raises(OSError, match="truncated"):
            read(truncated, 200, 100, random.Random("0:0:0"))
