"""build_model: architecture names and options are checked, with the valid ones listed."""

from __future__ import annotations

import pytest
import torch

import selfsup_color.models as models
from selfsup_color.models import ARCHITECTURES, ECCV16, AlexNet, FeatureEncoder, TimmColorizer, build_model


def test_registry_names_the_architectures() -> None:
    assert ARCHITECTURES == {"eccv16": ECCV16, "alexnet": AlexNet, "timm": TimmColorizer}
    assert models.architecture_options("timm") == (
        "backbone",
        "output_stride",
        "head_channels",
        "init",
        "num_outputs",
    )
    assert models.architecture_options("eccv16") == ("width", "init", "num_outputs")
    assert models.architecture_options("alexnet") == ("width", "init", "num_outputs")


def test_build_model_passes_the_options() -> None:
    model = build_model("eccv16", width=1 / 8, init="xavier")
    assert isinstance(model, ECCV16) and isinstance(model, FeatureEncoder)
    assert model.width == 1 / 8 and model.init == "xavier"
    timm_model = build_model("timm", backbone="resnet18", output_stride=16, head_channels=16)
    assert timm_model.backbone_output_stride == 16 and timm_model.output_stride == 4


def test_unknown_architecture_is_a_value_error_listing_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'vgg'.*eccv16, alexnet, timm"):
        build_model("vgg")


def test_unknown_option_is_a_type_error_naming_it_and_the_valid_ones() -> None:
    with pytest.raises(TypeError, match=r"\['depth', 'pretrained'\].*'eccv16'.*width, init"):
        build_model("eccv16", depth=3, pretrained=True, width=0.5)


def test_public_names_are_exported() -> None:
    for name in models.__all__:
        assert hasattr(models, name), name


@pytest.mark.parametrize(
    ("arch", "options"),
    [("eccv16", {"width": 0.125}), ("alexnet", {"width": 0.125}), ("timm", {"backbone": "resnet18"})],
)
def test_num_outputs_two_gives_regression_nets(arch: str, options: dict) -> None:
    """The L2 baseline predicts ab directly: 2 channels at 1/output_stride resolution instead of Q logits."""
    net = build_model(arch, num_outputs=2, **options)
    side = 64 // net.output_stride
    assert net(torch.rand(1, 1, 64, 64) * 100).shape == (1, 2, side, side)
