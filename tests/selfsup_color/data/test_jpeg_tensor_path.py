"""The tensor path of read_crop: JPEG header parsing, libjpeg-turbo decoders, torch resampling.

References are independent: Pillow's decoder and size, and torchvision's Resize + crop on Pillow
images. Tolerance 1 grey level: torch and Pillow round some fixed-point filter weights differently,
while a crop shifted by even a tenth of a pixel differs by tens of levels on these noisy pictures.
"""

from __future__ import annotations

import io
import random
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps

from selfsup_color.data import Crop, decode, jpeg, random_crop, read_crop, resized_size
from selfsup_color.data.jpeg import decode_jpeg_rgb, jpeg_decoder, jpeg_frame_size
from selfsup_color.data.resample import resample_crop

from .images import picture, save

ORIENTATION = 0x0112


def decoders() -> list[object]:
    """Every JPEG decoder installed here: TorchCodec's and torchvision's (the latter is required)."""
    found = []
    try:
        from torchcodec.decoders import decode_jpeg

        found.append(pytest.param(decode_jpeg, id="torchcodec"))
    except Exception:
        found.append(
            pytest.param(None, id="torchcodec", marks=pytest.mark.skip("torchcodec is not installed"))
        )
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_jpeg as vision

    found.append(
        pytest.param(
            lambda data: vision(data, mode=ImageReadMode.RGB, apply_exif_orientation=True), id="torchvision"
        )
    )
    return found


def jpeg_files(folder: Path) -> dict[str, Path]:
    pixels = picture(83, 61)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    return {
        "baseline": save(folder / "b.jpg", pixels, quality=90),
        "4:4:4": save(folder / "s.jpg", pixels, quality=90, subsampling=0),
        "progressive": save(folder / "p.jpg", pixels, progressive=True),
        "gray": save(folder / "g.jpg", Image.fromarray(pixels).convert("L")),
        "cmyk": save(folder / "c.jpg", Image.fromarray(pixels).convert("CMYK")),
        "exif": save(folder / "e.jpg", pixels, exif=exif, comment=b"x" * 300),
    }


def test_frame_size_is_pillows(tmp_path: Path) -> None:
    for name, path in jpeg_files(tmp_path).items():
        data = jpeg.read_if_jpeg(path)
        assert isinstance(data, bytearray) and data == path.read_bytes(), name
        assert jpeg_frame_size(data) == Image.open(path).size, name
    assert jpeg.read_if_jpeg(save(tmp_path / "p.png", picture(8, 8))) is None
    data = (tmp_path / "b.jpg").read_bytes()
    padded = data[:2] + b"\xff\xff" + data[2:]  # fill bytes before a marker are allowed
    assert jpeg_frame_size(padded) == (83, 61)
    png = save(tmp_path / "x.png", picture(8, 8)).read_bytes()
    for bad in (png, b"", data[:2], data[:40], b"\xff\xd8\xff\xda\x00\x02", b"\xff\xd8garbage"):
        assert jpeg_frame_size(bad) is None


@pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities of TorchVision")
@pytest.mark.parametrize("decoder", decoders())
def test_decoders_give_pillows_pixels(tmp_path: Path, decoder: object) -> None:
    for name, path in jpeg_files(tmp_path).items():
        image = decode_jpeg_rgb(path.read_bytes(), decoder)
        if name == "baseline":  # the layout torch's vectorised resampling wants
            assert image.permute(1, 2, 0).is_contiguous()
        expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
        np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), expected, err_msg=name)
    stored = picture(30, 20)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        buffer = io.BytesIO()
        Image.fromarray(stored).save(buffer, "JPEG", exif=exif)
        upright = np.asarray(ImageOps.exif_transpose(Image.open(buffer)).convert("RGB"))
        decoded = decode_jpeg_rgb(buffer.getvalue(), decoder).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(decoded, upright, err_msg=f"orientation {orientation}")
    truncated = (tmp_path / "b.jpg").read_bytes()[:600]
    with pytest.raises(RuntimeError):
        decode_jpeg_rgb(truncated, decoder)


def reference(image: np.ndarray, crop: Crop) -> np.ndarray:
    """torchvision's recipe on a Pillow image: Resize to ``crop.resized``, crop, flip."""
    resized = TF.resize(Image.fromarray(image), list(crop.resized[::-1]))
    out = TF.crop(resized, crop.top, crop.left, crop.size, crop.size)
    return np.asarray(TF.hflip(out) if crop.flip else out, dtype=np.int16)


@pytest.mark.parametrize(
    ("width", "height", "resize", "size"),
    [
        (500, 375, 256, 176),
        (375, 500, 256, 176),
        (130, 97, 96, 64),
        (40, 30, 64, 48),
        (300, 64, 64, 64),
        (174, 567, 176, 120),
    ],
    ids=["landscape", "portrait", "small", "upscaled", "whole-height", "upscaled-slightly"],
)
def test_resampled_crops_are_torchvisions(width: int, height: int, resize: int, size: int) -> None:
    image = picture(width, height, seed=width)
    tensor = torch.from_numpy(image).permute(2, 0, 1)
    resized = resized_size(width, height, resize)
    corners = [
        Crop(resized, 0, 0, size),
        Crop(resized, resized[0] - size, resized[1] - size, size, flip=True),
    ]
    # Every 7th row: a slight upscale cut at some rows has as many source rows as outputs.
    stepped = [Crop(resized, 0, top, size) for top in range(0, resized[1] - size + 1, 7)]
    drawn = [random_crop(width, height, resize, size, random.Random(f"0:0:{i}")) for i in range(8)]
    for crop in corners + stepped + drawn:
        ours = resample_crop(tensor, crop)
        assert ours.shape == (size, size, 3) and ours.dtype == torch.uint8 and ours.is_contiguous()
        diff = np.abs(ours.numpy().astype(np.int16) - reference(image, crop))
        assert diff.max() <= 1, crop
        assert (diff == 0).mean() > 0.95, crop  # a rounding difference now and then, no more


def test_read_crop_takes_the_tensor_path_where_it_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resampled: list[Crop] = []
    monkeypatch.setattr(
        decode, "resample_crop", lambda image, crop: resampled.append(crop) or resample_crop(image, crop)
    )
    small = save(tmp_path / "small.jpg", picture(150, 110), quality=90)
    big = save(tmp_path / "big.jpg", picture(400, 300), quality=90)  # twice 192 x 144: decoded reduced
    png = save(tmp_path / "small.png", picture(150, 110))
    for path in (small, big, png):
        for index in range(3):
            seed = f"0:0:{index}"
            ours = read_crop(path, 96, 80, random.Random(seed))
            via_pillow = decode.pillow_crop(path, 96, 80, random.Random(seed))
            assert np.abs(ours.numpy().astype(int) - via_pillow.numpy().astype(int)).max() <= 1
    assert len(resampled) == 3  # the small JPEG only
    assert resampled[0] == random_crop(150, 110, 96, 80, random.Random("0:0:0"))
    assert decode.draft_reduces(400, 300, 96) and not decode.draft_reduces(150, 110, 96)
    monkeypatch.setattr(decode, "jpeg_decoder", lambda: None)  # no decoder installed: Pillow
    read_crop(small, 96, 80, random.Random("0:0:0"))
    assert len(resampled) == 3


@pytest.mark.parametrize(
    "shape", [(400, 300), (399, 300), (1000, 380), (380, 1000), (2049, 1537), (129, 2000)]
)
def test_draft_reduces_when_pillow_does(tmp_path: Path, shape: tuple[int, int]) -> None:
    path = save(tmp_path / "x.jpg", np.zeros((shape[1], shape[0], 3), np.uint8))
    for resize in (64, 96, 128, 256):
        with Image.open(path) as image:
            image.draft("RGB", resized_size(*shape, resize))
            assert (image.size != shape) == decode.draft_reduces(*shape, resize), resize


def test_the_decoder_in_use_is_named_and_silent(tmp_path: Path) -> None:
    chosen = jpeg_decoder()
    assert chosen is not None and chosen[0] in ("torchcodec", "torchvision")
    path = save(tmp_path / "x.jpg", picture(60, 40))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a -W error run must not fail on a deprecation warning
        assert read_crop(path, 40, 32).shape == (32, 32, 3)


def test_a_decoder_that_differs_from_pillow_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_orientation() -> Callable[[torch.Tensor], torch.Tensor]:
        from torchvision.io import ImageReadMode, decode_jpeg

        def decode(data: torch.Tensor) -> torch.Tensor:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return decode_jpeg(data, mode=ImageReadMode.RGB, apply_exif_orientation=False)

        return decode

    def missing() -> Callable[[torch.Tensor], torch.Tensor]:
        raise ImportError("not installed")

    candidates = {"missing": missing, "sideways": no_orientation, "real": jpeg.DECODERS["torchvision"]}
    monkeypatch.setattr(jpeg, "DECODERS", candidates)
    jpeg.jpeg_decoder.cache_clear()
    try:
        assert jpeg.jpeg_decoder()[0] == "real"
        monkeypatch.setattr(jpeg, "DECODERS", {"sideways": no_orientation})
        jpeg.jpeg_decoder.cache_clear()
        assert jpeg.jpeg_decoder() is None
    finally:
        jpeg.jpeg_decoder.cache_clear()
