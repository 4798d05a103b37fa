"""ECCV16 is the paper's network exactly: layers, BatchNorm placement, parameters, output size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selfsup_color import Q
from selfsup_color.models import ECCV16

from .conftest import lightness

# name: (channels, convs, stride of the last conv, dilation), straight from the paper.
PAPER_BLOCKS = {
    "conv1": (64, 2, 2, 1),
    "conv2": (128, 2, 2, 1),
    "conv3": (256, 3, 2, 1),
    "conv4": (512, 3, 1, 1),
    "conv5": (512, 3, 1, 2),
    "conv6": (512, 3, 1, 2),
    "conv7": (512, 3, 1, 1),
}


@pytest.fixture(scope="module")
def full() -> ECCV16:
    """The width-1 network (PyTorch's default init: the cheapest to build)."""
    return ECCV16(init="torch")


def test_parameter_count_at_width_1_is_32_230_393(full: ECCV16) -> None:
    assert sum(p.numel() for p in full.parameters()) == 32_230_393


@pytest.mark.parametrize("name", list(PAPER_BLOCKS))
def test_block_convs_relus_and_closing_batchnorm(full: ECCV16, name: str) -> None:
    channels, count, stride, dilation = PAPER_BLOCKS[name]
    block = list(full.get_submodule(name))
    convs = [m for m in block if isinstance(m, nn.Conv2d)]
    assert len(convs) == count and len(block) == 2 * count + 1
    for index, conv in enumerate(convs):
        assert conv.out_channels == channels and conv.kernel_size == (3, 3) and conv.bias is not None
        assert conv.dilation == (dilation, dilation) and conv.padding == (dilation, dilation)
        assert conv.stride == ((stride, stride) if index == count - 1 else (1, 1))
        assert isinstance(block[2 * index + 1], nn.ReLU)
    assert isinstance(block[-1], nn.BatchNorm2d) and not block[-1].affine
    assert block[-1].num_features == channels


def test_batchnorm_only_at_the_end_of_conv1_to_conv7(full: ECCV16) -> None:
    norms = [name for name, m in full.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms == [f"conv{i}.{2 * PAPER_BLOCKS[f'conv{i}'][1]}" for i in range(1, 8)]


def test_conv8_upsamples_without_batchnorm_and_logits_are_1x1_with_bias(full: ECCV16) -> None:
    up, relu, conv_a, relu_a, conv_b, relu_b = full.conv8
    assert isinstance(up, nn.ConvTranspose2d)
    assert (up.in_channels, up.out_channels, up.kernel_size) == (512, 256, (4, 4))
    assert (up.stride, up.padding) == ((2, 2), (1, 1))
    for conv in (conv_a, conv_b):
        assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.out_channels == 256
    assert all(isinstance(m, nn.ReLU) for m in (relu, relu_a, relu_b))
    logits = full.logits
    assert (logits.in_channels, logits.out_channels, logits.kernel_size) == (256, Q, (1, 1))
    assert logits.bias is not None


def test_taps_channels_and_strides(full: ECCV16) -> None:
    assert full.tap_names == tuple(PAPER_BLOCKS)
    assert full.tap_channels() == {name: spec[0] for name, spec in PAPER_BLOCKS.items()}
    assert full.tap_strides() == dict(zip(PAPER_BLOCKS, (2, 4, 8, 8, 8, 8, 8), strict=True))
    assert full.output_stride == 4


def test_width_scales_every_channel_but_q() -> None:
    narrow, tiny = ECCV16(width=1 / 8), ECCV16(width=1e-3)
    assert narrow.tap_channels() == {name: spec[0] // 8 for name, spec in PAPER_BLOCKS.items()}
    assert narrow.conv8[0].out_channels == 32 and narrow.logits.out_channels == Q
    assert set(tiny.tap_channels().values()) == {1} and tiny.logits.in_channels == 1
    with pytest.raises(ValueError, match="width"):
        ECCV16(width=0)


@pytest.mark.parametrize("size", [(64, 64), (176, 176), (64, 96), (40, 24)])
def test_logits_are_exactly_a_quarter_of_the_input(size: tuple[int, int]) -> None:
    model = ECCV16(width=1 / 8).eval()
    with torch.no_grad():
        logits = model(lightness(*size, batch=2))
    assert logits.shape == (2, Q, size[0] // 4, size[1] // 4)


def test_input_size_must_be_a_multiple_of_8() -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        ECCV16(width=1 / 8)(lightness(60, 64))
