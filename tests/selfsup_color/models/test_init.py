"""Initialisation schemes: weight statistics follow each scheme's formula; initial logits near-uniform."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from selfsup_color import Q
from selfsup_color.models import ECCV16, LOGITS_STD, TimmColorizer, init_weights
from selfsup_color.models.init import fan_in

from .conftest import lightness


def convs(model: nn.Module) -> list[nn.Module]:
    """The convolutions of ``model`` but the last (the logits layer)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd | nn.Linear)][:-1]


def assert_std(weight: torch.Tensor, expected: float) -> None:
    """Sample std within 5 standard errors of ``expected`` (a std estimate's error is ~ 1 / sqrt(2n))."""
    assert weight.std().item() == pytest.approx(expected, rel=5 / math.sqrt(2 * weight.numel()))


@pytest.fixture(scope="module", params=["kaiming", "xavier", "torch"])
def model(request: pytest.FixtureRequest) -> ECCV16:
    torch.manual_seed(0)
    return ECCV16(width=1 / 4, init=request.param).eval()


def test_fan_in_counts_the_inputs_of_one_output() -> None:
    assert fan_in(nn.Conv2d(16, 32, 3)) == 16 * 9
    assert fan_in(nn.Conv2d(16, 16, 3, groups=16)) == 9
    assert fan_in(nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1)) == 512 * 4
    assert fan_in(nn.Linear(10, 3)) == 10


def test_conv_weights_follow_the_scheme(model: ECCV16) -> None:
    for conv in convs(model):
        if model.init == "kaiming":
            assert_std(conv.weight, math.sqrt(2 / fan_in(conv)))
        elif model.init == "xavier":
            fan_in_, fan_out = nn.init._calculate_fan_in_and_fan_out(conv.weight)
            assert_std(conv.weight, math.sqrt(2 / (fan_in_ + fan_out)))
            assert conv.weight.abs().max() <= math.sqrt(6 / (fan_in_ + fan_out))
        else:  # PyTorch's default: uniform with bound 1 / sqrt(fan_in), std bound / sqrt(3)
            fan_in_, _ = nn.init._calculate_fan_in_and_fan_out(conv.weight)
            assert_std(conv.weight, 1 / math.sqrt(3 * fan_in_))
        assert (conv.bias.abs().max() > 0) == (model.init == "torch")


def test_logits_layer_is_small_and_initial_predictions_near_uniform(model: ECCV16) -> None:
    if model.init != "torch":
        assert_std(model.logits.weight, LOGITS_STD)
        assert not model.logits.bias.any()
    with torch.no_grad():
        probabilities = model(lightness(batch=2)).softmax(dim=1)
    if model.init != "torch":
        assert probabilities.max() < 1.1 / Q and probabilities.min() > 0.9 / Q


def test_timm_backbone_and_head_are_initialised_too() -> None:
    torch.manual_seed(0)
    model = TimmColorizer("resnet18", head_channels=32)
    assert_std(model.backbone.layer4[0].conv1.weight, math.sqrt(2 / fan_in(model.backbone.layer4[0].conv1)))
    assert_std(model.head.fuse[0][0].weight, math.sqrt(2 / fan_in(model.head.fuse[0][0])))
    assert_std(model.head.logits.weight, LOGITS_STD)


def test_linear_layers_and_return_value() -> None:
    layer = nn.Linear(400, 300)
    assert init_weights(layer, "kaiming") is layer
    assert_std(layer.weight, math.sqrt(2 / 400))
    assert not layer.bias.any()


def test_unknown_scheme_is_a_value_error_listing_the_schemes() -> None:
    with pytest.raises(ValueError, match=r"'he'.*kaiming, xavier, torch"):
        init_weights(nn.Conv2d(1, 1, 1), "he")
    with pytest.raises(ValueError, match="'he'"):
        ECCV16(width=1 / 8, init="he")
    with pytest.raises(ValueError, match="'he'"):
        TimmColorizer(init="he")
