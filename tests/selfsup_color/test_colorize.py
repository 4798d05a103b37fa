"""Inference: fake nets with known outputs through padding, resizing, decoding and file I/O."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data

from selfsup_color import Q, ab_bins, lab_to_rgb, rgb_to_lab
from selfsup_color.colorize import (
    MAX_SIDE,
    colorize_files,
    colorize_lightness,
    colorize_rgb,
    process_shape,
)

from .data.images import decoded_files, png_declaring

BINS = ab_bins()
PEAK = 50.0  # logit height: softmax(50 / 0.38) puts all mass on the peak bin


def bin_index(a: int, b: int) -> int:
    return int(((BINS - torch.tensor([a, b])).abs().sum(1) == 0).nonzero())


DARK, BRIGHT = bin_index(-20, 20), bin_index(20, 40)  # predicted for L < 50 and L >= 50


class FakeNet:
    """Logits at 1/4 resolution peaked on DARK or BRIGHT by the pooled input L; records input sizes."""

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def __call__(self, lightness: torch.Tensor) -> torch.Tensor:
        n, _, h, w = lightness.shape
        assert h % 8 == 0 and w % 8 == 0
        self.sizes.append((h, w))
        bright = F.avg_pool2d(lightness, 4) >= 50
        logits = torch.zeros(n, Q, h // 4, w // 4, dtype=lightness.dtype)
        logits[:, DARK] = PEAK * ~bright[:, 0]
        logits[:, BRIGHT] = PEAK * bright[:, 0]
        return logits


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """A 37 x 50 uint8 crop of scikit-image's astronaut, 1 x 3 x H x W."""
    return torch.from_numpy(data.astronaut()[100:137, 200:250].copy()).permute(2, 0, 1)[None]


def halves(n: int, h: int, w: int) -> torch.Tensor:
    """L = 30 on the left half, 70 on the right: N x 1 x H x W."""
    lightness = torch.full((n, 1, h, w), 30.0)
    lightness[..., w // 2 :] = 70.0
    return lightness


@pytest.mark.parametrize(
    ("process_size", "net_size", "margin"), [(None, (40, 56), 4), (16, (16, 24), 10), (64, (64, 88), 5)]
)
def test_colorize_lightness_follows_the_net(
    process_size: int | None, net_size: tuple[int, int], margin: int
) -> None:
    net = FakeNet()
    ab = colorize_lightness(net, halves(2, 37, 50), process_size=process_size)
    assert ab.shape == (2, 2, 37, 50)
    assert net.sizes == [net_size]
    # exact away from the dark/bright edge at column 25, blended by bilinear upsampling near it
    dark, bright = ab[..., : 25 - margin], ab[..., 25 + margin :]
    torch.testing.assert_close(dark, BINS[DARK].view(1, 2, 1, 1).expand_as(dark))
    torch.testing.assert_close(bright, BINS[BRIGHT].view(1, 2, 1, 1).expand_as(bright))


def test_process_shape_rounds_to_multiples_of_8() -> None:
    assert process_shape(37, 50, 16) == (16, 24)
    assert process_shape(480, 640, 256) == (256, 344)  # 341.3 -> 344
    assert process_shape(1000, 3, 100, max_side=40_000) == (33336, 104)  # shorter side is the width
    assert process_shape(10, 10, 1) == (8, 8)  # at least one multiple


@pytest.mark.parametrize(("h", "w"), [(37, 50), (5, 3), (8, 9), (1, 1)])
def test_odd_sizes_come_back_unchanged(h: int, w: int) -> None:
    ab = colorize_lightness(FakeNet(), torch.full((1, 1, h, w), 20.0))
    assert ab.shape == (1, 2, h, w)
    torch.testing.assert_close(ab, BINS[DARK].view(1, 2, 1, 1).expand(1, 2, h, w))


@pytest.mark.parametrize("process_size", [None, 16])
@pytest.mark.parametrize("as_float", [False, True])
def test_colorize_rgb_keeps_full_resolution_lightness(
    photo: torch.Tensor, process_size: int | None, as_float: bool
) -> None:
    rgb = photo.float() / 255 if as_float else photo
    out = colorize_rgb(FakeNet(), rgb, process_size=process_size)
    assert out.shape == (1, 3, 37, 50) and out.dtype == torch.float32
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    L_in = rgb_to_lab(photo.float() / 255)[:, 0]
    L_out = rgb_to_lab(out)[:, 0]
    # where (L_in, predicted ab) lies inside sRGB, converting back gives L_in exactly
    ab = colorize_lightness(FakeNet(), L_in[:, None], process_size=process_size)
    lab = torch.cat((L_in[:, None], ab), 1)
    in_gamut = (rgb_to_lab(lab_to_rgb(lab)) - lab).abs().amax(1) < 0.1
    assert float(in_gamut.float().mean()) > 0.7
    torch.testing.assert_close(L_out[in_gamut], L_in[in_gamut], atol=0.02, rtol=0)


def test_colorize_rgb_with_a_constant_bin() -> None:
    q = bin_index(10, 20)

    def net(lightness: torch.Tensor) -> torch.Tensor:
        n, _, h, w = lightness.shape
        return F.one_hot(torch.full((n, h // 4, w // 4), q), Q).permute(0, 3, 1, 2).float() * PEAK

    rgb = torch.rand(2, 3, 20, 30, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    lab = rgb_to_lab(colorize_rgb(net, rgb))
    torch.testing.assert_close(lab[:, 0], rgb_to_lab(rgb)[:, 0], atol=0.02, rtol=0)
    torch.testing.assert_close(lab[:, 1:], BINS[q].view(1, 2, 1, 1).expand(2, 2, 20, 30), atol=0.05, rtol=0)


def test_colorize_keeps_training_mode_and_gradients_off() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(1, Q, 1), torch.nn.AvgPool2d(4))
    net.train()
    ab = colorize_lightness(net, torch.rand(1, 1, 16, 16) * 100)
    assert net.training and not ab.requires_grad


def test_colorize_rejects_bad_input() -> None:
    L = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="lightness must have shape"):
        colorize_lightness(FakeNet(), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="process_size"):
        colorize_lightness(FakeNet(), L, process_size=0)
    with pytest.raises(ValueError, match="temperature"):
        colorize_lightness(FakeNet(), L, temperature=0.0)
    with pytest.raises(ValueError, match=r"net must map L .* got \(1, 10, 2, 2\)"):
        colorize_lightness(lambda x: torch.zeros(1, 10, 2, 2), L)
    with pytest.raises(ValueError, match=r"rgb must lie in \[0.0, 1.0\]"):
        colorize_rgb(FakeNet(), torch.full((1, 3, 8, 8), 2.0))


def write_image(path: Path, h: int, w: int, **save_kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, **save_kwargs)
    return path


def test_colorize_files(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees on display
    inputs = [
        write_image(tmp_path / "in" / "a.png", 37, 50),
        tmp_path / "in" / "broken.jpg",
        write_image(tmp_path / "in" / "sub" / "b.jpg", 20, 24, exif=exif),
        write_image(tmp_path / "in" / "c.webp", 9, 7),
    ]
    inputs[1].write_bytes(b"not an image")
    net = FakeNet()
    with pytest.warns(UserWarning, match=r"skipping .*broken\.jpg"):
        written = colorize_files(net, inputs, tmp_path / "out", process_size=16)
    assert written == [tmp_path / "out" / f"{stem}_color.png" for stem in "abc"]
    sizes = []
    for path in written:
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "RGB"
            sizes.append(im.size)
    assert sizes == [(50, 37), (20, 24), (7, 9)]  # b.jpg displays rotated
    assert len(net.sizes) == 3 and min(net.sizes[0]) == 16


def test_colorize_files_refuses_to_overwrite(tmp_path: Path) -> None:
    a = write_image(tmp_path / "x" / "a.png", 8, 8)
    b = write_image(tmp_path / "y" / "a.jpg", 8, 8)
    with pytest.raises(ValueError, match="would both be written"):
        colorize_files(FakeNet(), [a, b], tmp_path / "out")
    with pytest.raises(ValueError, match="overwrite an input"):
        colorize_files(FakeNet(), [a], tmp_path / "x", suffix="")
    assert not (tmp_path / "out").exists()


def uncapped_shape(height: int, width: int, process_size: int) -> tuple[int, int]:
    """The documented rule without a cap: shorter side to process_size, nearest multiples of 8 (>= 8)."""
    scale = process_size / min(height, width)
    return tuple(max(8, 8 * int(side * scale / 8 + 0.5)) for side in (height, width))  # type: ignore[return-value]


def test_process_shape_caps_the_long_side_whatever_the_aspect_ratio() -> None:
    assert process_shape(5000, 3, 256) == (MAX_SIDE, 8)  # the photo: 426,672 x 8 without a cap
    assert process_shape(37, 50, None) is None  # full resolution within the cap: the image itself
    assert process_shape(3000, 40, None, max_side=1000) == (1000, 16)  # full resolution, scaled down
    rng = random.Random(0)
    for _ in range(3000):
        height, width = (rng.randint(1, 10 ** rng.randint(1, 5)) for _ in range(2))
        process_size, max_side = rng.choice([None, 1, 16, 256, 1000]), rng.randint(8, 3000)
        shape = process_shape(height, width, process_size, max_side)
        long, short = max(height, width), min(height, width)
        if shape is None:
            assert process_size is None and long <= max_side
            continue
        cap = max_side // 8 * 8
        assert all(side % 8 == 0 and 8 <= side <= cap for side in shape), (height, width, shape)
        if process_size is not None and long * process_size / short <= cap - 4:
            assert shape == uncapped_shape(height, width, process_size)  # the cap does not bind
        elif process_size is None or long * process_size / short > max_side:
            # long side at the cap, the shorter side scaled alike (within rounding and the cap)
            new_long, new_short = (shape[0], shape[1]) if height >= width else (shape[1], shape[0])
            assert new_long == cap
            assert abs(new_short - short * max_side / long) <= 4 + max_side - cap or new_short == 8


class RecordingNet(torch.nn.Module):
    """A tiny random network (one stride-4 convolution to ab, as the L2 baseline) recording input sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, kernel_size=4, stride=4)
        self.sizes: list[tuple[int, int]] = []

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        self.sizes.append((lightness.shape[2], lightness.shape[3]))
        return self.conv(lightness / 100.0)


def test_an_extreme_shape_is_colorized_through_a_bounded_network_input(tmp_path: Path) -> None:
    """The issue's 3 x 5000 JPEG: written at its own size, while the net sees at most max_side."""
    torch.manual_seed(0)
    path = tmp_path / "e.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (5000, 3, 3), np.uint8)).save(path)
    net = RecordingNet().eval()
    written = colorize_files(net, [path], tmp_path / "out")  # defaults: process_size 256, MAX_SIDE
    written += colorize_files(net, [path], tmp_path / "full", process_size=None, max_side=512)
    assert net.sizes == [(MAX_SIDE, 8), (512, 8)]
    for out in written:
        with Image.open(out) as image:
            assert image.size == (3, 5000)


def test_files_over_the_pixel_budget_are_skipped_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = decoded_files(monkeypatch)
    good = write_image(tmp_path / "in" / "a.png", 20, 24)
    bomb = png_declaring(tmp_path / "in" / "bomb.png", 20_000, 5_000)  # 100 MP over the default 50 MP
    big = write_image(tmp_path / "in" / "big.png", 40, 50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = colorize_files(FakeNet(), [good, bomb], tmp_path / "out", process_size=16)
        small = tmp_path / "small"
        written += colorize_files(FakeNet(), [big, good], small, process_size=16, max_pixels=1000)
    assert written == [tmp_path / "out" / "a_color.png", tmp_path / "small" / "a_color.png"]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2, messages  # one warning per skipped file, nothing else
    assert messages[0].startswith(f"skipping {bomb}: {bomb} is 20000 x 5000 pixels (100.0 megapixels)")
    assert messages[1].startswith(f"skipping {big}: {big} is 50 x 40 pixels")
    assert str(bomb) not in decoded and str(big) not in decoded and str(good) in decoded


def test_two_channel_nets_predict_ab_directly() -> None:
    """Regression nets (the L2 baseline) return ab itself: no annealed mean, just the upsampling."""
    ab = torch.tensor([12.0, -30.0])
    out = colorize_lightness(
        lambda x: ab.view(1, 2, 1, 1).expand(x.shape[0], 2, x.shape[2] // 4, x.shape[3] // 4),
        torch.full((2, 1, 24, 40), 60.0),
    )
    assert out.shape == (2, 2, 24, 40)
    assert torch.allclose(out, ab.view(1, 2, 1, 1).expand_as(out))


def test_colorize_and_evaluate_read_an_image_as_training_does(tmp_path: Path) -> None:
    """A transparent PNG is composited on white and a 16-bit PNG scaled, as ``load_rgb`` does for training."""
    from selfsup_color.colorize import read_rgb_or_skip
    from selfsup_color.data.decode import load_rgb

    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, 4:, 3] = 255  # left half fully transparent, right half opaque red
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    pixels = read_rgb_or_skip(path)
    assert pixels is not None and pixels.shape == (6, 8, 3)
    assert (pixels[:, :4] == 255).all()  # white where transparent, not the hidden red
    assert (pixels[:, 4:] == np.array([200, 0, 0], np.uint8)).all()
    np.testing.assert_array_equal(pixels, np.asarray(load_rgb(path)))
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 128 * 257, np.uint16)).save(deep)  # mid-gray in 16 bits
    np.testing.assert_array_equal(read_rgb_or_skip(deep), np.full((4, 4, 3), 128, np.uint8))


def test_inputs_use_the_toolkit_image_extensions(tmp_path: Path) -> None:
    from selfsup_color.data.files import IMAGE_EXTENSIONS, find_images

    for name in ("a.TIF", "b.webp", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    found = {p.name for p in find_images([tmp_path])}
    assert found == {"a.TIF", "b.webp"} and ".tif" in IMAGE_EXTENSIONS
