"""Decoding every kind of file to upright 8-bit RGB, whole (load_rgb) and as crops (read_crop)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError

from selfsup_color.data import load_rgb, read_crop
from selfsup_color.data.decode import MAX_PIXELS, ORIENTATION, ImageTooLargeError

from .images import decoded_files, picture, png_declaring, save

W, H = 40, 30


def rgba_file(tmp_path: Path) -> Path:
    """RGBA: left column transparent black, then opaque red, then half-transparent blue."""
    pixels = np.zeros((H, W, 4), np.uint8)
    pixels[:, 10:20] = (255, 0, 0, 255)
    pixels[:, 20:] = (0, 0, 255, 128)
    return save(tmp_path / "rgba.png", pixels)


def expected_rgba(rgb: np.ndarray) -> None:
    assert (rgb[:, :10] == 255).all()  # transparent -> white, not the black under it
    assert (rgb[:, 10:20] == (255, 0, 0)).all()
    np.testing.assert_allclose(rgb[:, 20:], np.broadcast_to((127, 127, 255), (H, 20, 3)), atol=1)


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    expected_rgba(np.asarray(load_rgb(rgba_file(tmp_path))))


def test_palette_with_transparency(tmp_path: Path) -> None:
    image = Image.new("P", (W, H), 1)
    image.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    image.paste(0, (0, 0, 10, H))  # index 0, black, is the transparent one
    path = save(tmp_path / "p.png", image, transparency=0)
    assert Image.open(path).mode == "P"
    rgb = np.asarray(load_rgb(path))
    assert (rgb[:, :10] == 255).all() and (rgb[:, 10:] == (0, 200, 0)).all()
    gif = save(tmp_path / "p.gif", image, transparency=0)
    np.testing.assert_array_equal(np.asarray(load_rgb(gif)), rgb)


def test_gray_with_alpha_and_plain_gray(tmp_path: Path) -> None:
    la = np.zeros((H, W, 2), np.uint8)
    la[..., 0], la[:, 10:, 1] = 90, 255
    rgb = np.asarray(load_rgb(save(tmp_path / "la.png", Image.fromarray(la, "LA"))))
    assert (rgb[:, :10] == 255).all() and (rgb[:, 10:] == 90).all()
    gray = picture(W, H)[..., 0]
    rgb = np.asarray(load_rgb(save(tmp_path / "l.png", gray)))
    assert rgb.shape == (H, W, 3) and all((rgb[..., c] == gray).all() for c in range(3))


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 100, 65535, 1000]], np.uint16).repeat(4, axis=0)
    path = save(tmp_path / "g16.png", values)
    assert Image.open(path).mode in ("I;16", "I")  # Pillow < 10.3 opens 16-bit PNGs as 32-bit "I"
    rgb = np.asarray(load_rgb(path))
    assert rgb.shape == (4, 4, 3) and (rgb[0, :, 0] == (0, 100, 255, 4)).all()


def test_float_tiff_is_taken_as_zero_to_one(tmp_path: Path) -> None:
    path = save(tmp_path / "f.tif", Image.fromarray(np.full((4, 4), 0.5, np.float32), "F"))
    assert (np.asarray(load_rgb(path)) == 128).all()


def test_cmyk_jpeg_and_bilevel(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (W, H), (0, 0, 0, 0))
    cmyk.paste((255, 0, 0, 0), (0, 0, 20, H))  # cyan
    path = save(tmp_path / "cmyk.jpg", cmyk, quality=95)
    assert Image.open(path).mode == "CMYK"
    rgb = np.asarray(load_rgb(path)).astype(int)
    np.testing.assert_allclose(rgb[5:-5, 2:15], np.broadcast_to((0, 255, 255), (H - 10, 13, 3)), atol=8)
    np.testing.assert_allclose(rgb[5:-5, 25:-2], 255, atol=8)
    bilevel = save(tmp_path / "one.png", Image.fromarray(picture(W, H)[..., 0] > 128))
    assert set(np.unique(np.asarray(load_rgb(bilevel)))) <= {0, 255}


@pytest.mark.parametrize("suffix", [".webp", ".bmp", ".tiff"])
def test_other_formats(tmp_path: Path, suffix: str) -> None:
    array = picture(W, H)
    options = {"lossless": True} if suffix == ".webp" else {}
    path = save(tmp_path / f"x{suffix}", array, **options)
    np.testing.assert_array_equal(np.asarray(load_rgb(path)), array)


@pytest.mark.parametrize(
    ("orientation", "turn"),
    [(3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_270), (8, Image.Transpose.ROTATE_90)],
)
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, turn: Image.Transpose) -> None:
    stored = picture(90, 60, smooth=True)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    path = save(tmp_path / "rotated.jpg", stored, exif=exif, quality=95)
    decoded = Image.open(path).convert("RGB")  # the stored pixels, as JPEG decoded them
    upright = load_rgb(path)
    np.testing.assert_array_equal(np.asarray(upright), np.asarray(decoded.transpose(turn)))
    # A crop sees the same upright picture: 60 x 90 stored sideways is 60 wide, 90 high for 6 and 8.
    crop = read_crop(path, 48, 40)
    reference = TF.center_crop(TF.resize(upright, 48), [40, 40])
    assert np.abs(np.asarray(crop, dtype=int) - np.asarray(reference, dtype=int)).max() <= 1


def test_read_crop_handles_every_mode(tmp_path: Path) -> None:
    crop = np.asarray(read_crop(rgba_file(tmp_path), 30, 30, rng=None))
    assert crop.shape == (30, 30, 3)
    assert (crop[:, :5] == 255).all() and (crop[:, 10:13] == (255, 0, 0)).all()
    gray = read_crop(save(tmp_path / "g16.png", np.full((8, 12), 257 * 7, np.uint16)), 16, 16)
    assert gray.shape == (16, 16, 3) and gray.dtype == torch.uint8 and (gray == 7).all()


def test_broken_files_raise(tmp_path: Path) -> None:
    whole = save(tmp_path / "whole.jpg", picture(64, 48))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(OSError, match="truncated"):
        load_rgb(truncated)
    with pytest.raises(OSError, match="truncated"):
        read_crop(truncated, 32, 32)
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    with pytest.raises(UnidentifiedImageError):
        load_rgb(text)


def test_a_file_over_the_pixel_budget_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = decoded_files(monkeypatch)
    bomb = png_declaring(tmp_path / "bomb.png", 20_000, 5_000)  # 100 MP: Pillow itself only warns
    assert 20_000 * 5_000 > MAX_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor does Pillow's DecompressionBombWarning come out
        with pytest.raises(ImageTooLargeError, match=r"bomb\.png is 20000 x 5000 pixels \(100\.0 megapix"):
            load_rgb(bomb)
        with pytest.raises(ImageTooLargeError, match=r"bomb\.png"):
            read_crop(bomb, 256, 176)
    small = save(tmp_path / "small.png", picture(64, 48))
    with pytest.raises(ImageTooLargeError, match="64 x 48"):
        load_rgb(small, max_pixels=64 * 48 - 1)
    assert np.asarray(load_rgb(small, max_pixels=64 * 48)).shape == (48, 64, 3)  # the budget is inclusive
    assert np.asarray(load_rgb(small, max_pixels=None)).shape == (48, 64, 3)  # None: no budget
    assert set(decoded) == {str(small)}  # the refused file was opened, never decoded


def test_crops_budget_the_pixels_decoded_after_draft(tmp_path: Path) -> None:
    """A JPEG that ``draft`` decodes at 1/2 scale counts its reduced size against the budget."""
    jpeg = save(tmp_path / "p.jpg", picture(64, 48), quality=95)
    assert read_crop(jpeg, 16, 16, max_pixels=32 * 24).shape == (16, 16, 3)  # declares 64 x 48
    with pytest.raises(ImageTooLargeError, match="32 x 24"):
        read_crop(jpeg, 16, 16, max_pixels=32 * 24 - 1)
    with pytest.raises(ImageTooLargeError, match="64 x 48"):  # no reduction: all of it would be decoded
        read_crop(jpeg, 40, 32, max_pixels=64 * 48 - 1)
    png = save(tmp_path / "p.png", picture(64, 48))
    with pytest.raises(ImageTooLargeError, match="64 x 48"):  # no draft for PNG
        read_crop(png, 16, 16, max_pixels=64 * 48 - 1)
