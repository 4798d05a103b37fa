"""Timm backbones: taps from feature_info, dilated output strides, the head, generality beyond ResNets."""

from __future__ import annotations

import pytest
import torch

from selfsup_color import Q
from selfsup_color.models import FusionHead, TimmColorizer, normalize_lightness

from .conftest import lightness

RESNET_TAPS = ("stem", "layer1", "layer2", "layer3", "layer4")
RESNET18_STRIDES = {32: (2, 4, 8, 16, 32), 16: (2, 4, 8, 16, 16), 8: (2, 4, 8, 8, 8)}


@pytest.fixture(scope="module", params=list(RESNET18_STRIDES))
def resnet18(request: pytest.FixtureRequest) -> TimmColorizer:
    torch.manual_seed(0)
    return TimmColorizer("resnet18", output_stride=request.param, head_channels=32).eval()


def test_resnet18_taps_strides_and_skip(resnet18: TimmColorizer) -> None:
    assert resnet18.tap_names == RESNET_TAPS
    expected = RESNET18_STRIDES[resnet18.backbone_output_stride]
    assert resnet18.tap_strides() == dict(zip(RESNET_TAPS, expected, strict=True))
    assert resnet18.tap_channels() == dict(zip(RESNET_TAPS, (64, 64, 128, 256, 512), strict=True))
    assert resnet18.skip_tap == "layer1" and resnet18.output_stride == 4


def test_resnet18_logits_and_taps_at_every_output_stride(resnet18: TimmColorizer) -> None:
    x = lightness(64, 96, batch=2)
    with torch.no_grad():
        assert resnet18(x).shape == (2, Q, 16, 24)
        features = resnet18.forward_features(x)
    for name, feature in features.items():
        stride = resnet18.tap_strides()[name]
        assert feature.shape == (2, resnet18.tap_channels()[name], 64 // stride, 96 // stride)


def test_resnet50_channels_and_logits() -> None:
    model = TimmColorizer("resnet50", output_stride=8).eval()
    assert model.tap_channels() == dict(zip(RESNET_TAPS, (64, 256, 512, 1024, 2048), strict=True))
    assert model.tap_strides() == dict(zip(RESNET_TAPS, (2, 4, 8, 8, 8), strict=True))
    backbone = sum(p.numel() for p in model.backbone.parameters())
    assert 23_000_000 < backbone < 24_000_000  # ResNet-50 without its 2M-parameter classifier
    with torch.no_grad():
        assert model(lightness()).shape == (1, Q, 16, 16)


@pytest.mark.parametrize(
    ("backbone", "taps", "skip"),
    [
        ("convnext_atto", ("stages_0", "stages_1", "stages_2", "stages_3"), "stages_0"),
        ("efficientnet_b0", ("blocks_0", "blocks_1", "blocks_2", "blocks_4", "blocks_6"), "blocks_1"),
    ],
)
def test_other_backbones_keep_timm_module_names(backbone: str, taps: tuple[str, ...], skip: str) -> None:
    model = TimmColorizer(backbone, head_channels=32).eval()
    assert model.tap_names == taps and model.skip_tap == skip
    with torch.no_grad():
        assert model(lightness(64, 96)).shape == (1, Q, 16, 24)
        features = model.forward_features(lightness(), [taps[2], taps[0]])
    assert list(features) == [taps[0], taps[2]]
    assert features[taps[2]].shape[-1] == 64 // model.tap_strides()[taps[2]]


@pytest.mark.parametrize(
    ("backbone", "output_stride"), [("resnet18", 8), ("convnext_atto", 32), ("efficientnet_b0", 32)]
)
def test_taps_are_those_of_timms_features_only_extractor(backbone: str, output_stride: int) -> None:
    import timm

    model = TimmColorizer(backbone, output_stride=output_stride, head_channels=16).eval()
    options = {} if output_stride == 32 else {"output_stride": output_stride}
    extractor = timm.create_model(backbone, pretrained=False, features_only=True, in_chans=1, **options)
    ours = model.backbone.state_dict()
    assert [v.shape for v in extractor.state_dict().values()] == [v.shape for v in ours.values()]
    extractor.load_state_dict(dict(zip(extractor.state_dict(), ours.values(), strict=True)))
    x = lightness(64, 96, batch=2)
    with torch.no_grad():
        expected = extractor.eval()(normalize_lightness(x))
        expected = list(expected.values() if isinstance(expected, dict) else expected)
        for depth, name in enumerate(model.tap_names, 1):
            features = model.forward_features(x, model.tap_names[:depth])
            assert list(features) == list(model.tap_names[:depth]), name
            for got, want in zip(features.values(), expected, strict=False):
                assert torch.equal(got, want), name


def test_head_without_skip_upsamples_the_deep_feature_alone() -> None:
    head = FusionHead(24, None, 16).eval()
    assert head(torch.randn(1, 24, 2, 3), None, (16, 24)).shape == (1, Q, 16, 24)
    with pytest.raises(ValueError, match="skip"):
        FusionHead(24, 8, 16)(torch.randn(1, 24, 2, 3), None, (16, 24))


def test_bad_backbone_and_output_stride_are_rejected() -> None:
    with pytest.raises(ValueError, match="not_a_backbone"):
        TimmColorizer("not_a_backbone")
    with pytest.raises(ValueError, match="output_stride"):
        TimmColorizer("resnet18", output_stride=4)
    with pytest.raises(ValueError, match="head_channels"):
        TimmColorizer("resnet18", head_channels=0)


def test_checkpoints_of_the_features_only_backbone_still_load(tmp_path) -> None:
    """Weights written when the backbone was timm's ``features_only`` wrapper (ConvNeXt's stages
    flattened to ``stages_0``) load into today's network through every path: the module, transfer."""
    import timm

    from selfsup_color.models import build_model
    from selfsup_color.pretrain.checkpoint import load_pretraining_module
    from selfsup_color.pretrain.module import ColorizationModule
    from transfer.encoder import EncoderConfig, load_network, save_weights

    options = {"backbone": "convnext_atto", "head_channels": 32}
    net = build_model("timm", **options)
    old = timm.create_model("convnext_atto", pretrained=False, features_only=True, in_chans=1)
    torch.manual_seed(1)
    for p in old.parameters():  # values the new network does not have, so a load is visible
        p.data.normal_()
    state = {f"backbone.{k}": v for k, v in old.state_dict().items()}
    state |= {k: v for k, v in net.state_dict().items() if not k.startswith("backbone.")}
    assert any(k.startswith("backbone.stages_0.") for k in state) and set(state) != set(net.state_dict())
    upgraded = net.upgrade_state_dict(state)
    net.load_state_dict(upgraded, strict=True)
    assert torch.equal(net.backbone.stages[1].blocks[0].conv_dw.weight, old.stages_1.blocks[0].conv_dw.weight)
    assert net.upgrade_state_dict(net.state_dict()).keys() == net.state_dict().keys()  # today's: unchanged

    loaded, _ = load_network(
        EncoderConfig(ckpt_path=str(save_weights(net, "timm", options, tmp_path / "e.pt")))
    )
    exported_old = tmp_path / "old.pt"
    record = {"format": "selfsup-color-encoder/1", "arch": "timm", "arch_options": options}
    torch.save({**record, "state_dict": state}, exported_old)
    from_old, _ = load_network(EncoderConfig(ckpt_path=str(exported_old)))
    for a, b in zip(from_old.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    module = ColorizationModule(arch="timm", arch_options=options, prior_images=1)
    ckpt = {"state_dict": {f"net.{k}": v for k, v in state.items()} | {
        k: v for k, v in module.state_dict().items() if not k.startswith("net.")},
        "hyper_parameters": dict(module.hparams), "global_step": 3}  # fmt: skip
    torch.save(ckpt, tmp_path / "old.ckpt")
    reloaded = load_pretraining_module(tmp_path / "old.ckpt")
    assert torch.equal(
        reloaded.net.backbone.stages[1].blocks[0].conv_dw.weight, old.stages_1.blocks[0].conv_dw.weight
    )
    hook = {"state_dict": {f"net.{k}": v for k, v in state.items()}}
    module.on_load_checkpoint(hook)  # Lightning's resume path
    assert set(hook["state_dict"]) == {f"net.{k}" for k in net.state_dict()}
