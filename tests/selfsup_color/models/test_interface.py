"""Every network honours the ColorizationNet / FeatureEncoder interface."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from selfsup_color import Q
from selfsup_color.models import ColorizationNet, FeatureEncoder, normalize_lightness

from .conftest import DEEPEST_MODULE, SMALL_MODELS, lightness


def first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def test_normalize_lightness_maps_0_50_100_to_minus_half_zero_half() -> None:
    assert normalize_lightness(torch.tensor([0.0, 50.0, 100.0])).tolist() == [-0.5, 0.0, 0.5]


def test_is_a_colorization_net_and_a_feature_encoder(small_model: tuple[str, ColorizationNet]) -> None:
    name, model = small_model
    assert isinstance(model, ColorizationNet) and isinstance(model, FeatureEncoder)
    assert model.output_stride == (8 if name == "alexnet" else 4)
    assert list(model.tap_channels()) == list(model.tap_names)
    assert list(model.tap_strides()) == list(model.tap_names)


def test_tap_shapes_match_channels_and_strides(small_model: tuple[str, ColorizationNet]) -> None:
    _, model = small_model
    with torch.no_grad():
        features = model.forward_features(lightness(64, 96, batch=2))
    assert tuple(features) == model.tap_names
    for name, feature in features.items():
        stride = model.tap_strides()[name]
        assert feature.shape == (2, model.tap_channels()[name], 64 // stride, 96 // stride)


def test_subset_of_taps_comes_back_shallow_to_deep(small_model: tuple[str, ColorizationNet]) -> None:
    _, model = small_model
    names = model.tap_names
    with torch.no_grad():
        subset = model.forward_features(lightness(), [names[2], names[0], names[2]])
        assert list(subset) == [names[0], names[2]]
        assert list(model.forward_features(lightness(), names[1])) == [names[1]]
        assert model.forward_features(lightness(), []) == {}


def test_shallow_taps_do_not_run_deeper_blocks(small_model: tuple[str, ColorizationNet]) -> None:
    name, model = small_model
    calls: list[str] = []
    deepest = DEEPEST_MODULE[name](model).register_forward_hook(lambda *_: calls.append("deepest"))
    logits = next(m for m in reversed(list(model.modules())) if isinstance(m, nn.Conv2d))
    head = logits.register_forward_hook(lambda *_: calls.append("logits"))
    try:
        with torch.no_grad():
            model.forward_features(lightness(), model.tap_names[1])
            assert calls == []
            model.forward_features(lightness())
            assert calls == ["deepest"]
            model(lightness())
            assert calls == ["deepest", "deepest", "logits"]
    finally:
        deepest.remove()
        head.remove()


def test_unknown_tap_is_a_key_error_listing_the_taps(small_model: tuple[str, ColorizationNet]) -> None:
    _, model = small_model
    with pytest.raises(KeyError, match="nonsense") as error:
        model.forward_features(lightness(), [model.tap_names[0], "nonsense"])
    assert model.tap_names[-1] in str(error.value)


def test_lightness_is_normalised_inside(small_model: tuple[str, ColorizationNet]) -> None:
    _, model = small_model
    seen: list[torch.Tensor] = []
    hook = first_conv(model).register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            gray = model(torch.full((1, 1, 64, 64), 50.0))
            model.forward_features(torch.full((1, 1, 64, 64), 100.0), model.tap_names[0])
            zero = model._extract(torch.zeros(1, 1, 64, 64), len(model.tap_names))
            size = (64 // model.output_stride,) * 2
            direct = model._predict(dict(zip(model.tap_names, zero, strict=True)), size)
    finally:
        hook.remove()
    assert torch.equal(seen[0], torch.zeros(1, 1, 64, 64))
    assert torch.equal(seen[1], torch.full((1, 1, 64, 64), 0.5))
    torch.testing.assert_close(gray, direct)


def test_input_must_be_a_one_channel_float_batch(small_model: tuple[str, ColorizationNet]) -> None:
    _, model = small_model
    with pytest.raises(ValueError, match="N x 1 x H x W"):
        model(torch.zeros(1, 3, 64, 64))
    with pytest.raises(TypeError, match="floating"):
        model.forward_features(torch.zeros(1, 1, 64, 64, dtype=torch.uint8))


@pytest.mark.parametrize("name", list(SMALL_MODELS))
def test_gradient_reaches_the_first_conv(name: str) -> None:
    torch.manual_seed(0)
    model = SMALL_MODELS[name]().train()
    logits = model(lightness(batch=2))
    target = torch.randint(Q, (2, *logits.shape[-2:]), generator=torch.Generator().manual_seed(1))
    assert logits.shape[-2:] == (64 // model.output_stride,) * 2
    F.cross_entropy(logits, target).backward()
    grad = first_conv(model).weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
