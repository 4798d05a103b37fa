"""The colorization AlexNet against richzhang/colorization's colorization/train_alexnet/train_val.prototxt."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from skimage.transform import resize
from torch import nn

from selfsup_color import Q
from selfsup_color.colorize import colorize_lightness
from selfsup_color.core.targets import TargetBuilder
from selfsup_color.models import AlexNet, build_model
from selfsup_color.pretrain.cli import run_lightning_cli
from transfer.encoder import EncoderConfig, build_encoder

from ..pretrain.conftest import photo_dirs, tiny_config, write_config  # noqa: F401 (a fixture)

# The prototxt's Convolution layers, copied by hand from its text:
# (name, num_output, kernel_size, stride, pad, dilation, group).
PROTOTXT_CONVS = (
    ("conv1", 96, 11, 4, 5, 1, 1),
    ("conv2", 256, 5, 1, 2, 1, 2),
    ("conv3", 384, 3, 1, 1, 1, 1),
    ("conv4", 384, 3, 1, 1, 1, 2),
    ("conv5", 256, 3, 1, 1, 1, 2),
    ("fc6", 4096, 6, 1, 5, 2, 1),
    ("fc7", 4096, 1, 1, 0, 1, 1),
    ("fc8", 313, 1, 1, 0, 1, 1),
)
# Its max Pooling layers (kernel_size, stride, pad) and the layer each one feeds.
PROTOTXT_POOLS = {"conv2": (3, 2, 1), "conv3": (3, 2, 1), "fc6": (3, 1, 1)}  # pool1, pool2, pool5


def prototxt_parameters() -> int:
    """Weights (out x in / group x k x k) plus biases of every convolution; BatchNorm has no scale."""
    total, channels = 0, 1  # data_l: the L channel only
    for _, out, kernel, _, _, _, group in PROTOTXT_CONVS:
        total += out * channels // group * kernel * kernel + out
        channels = out
    return total


def caffe_sizes(side: int) -> dict[str, int]:
    """Spatial size of each tap per Caffe's arithmetic (convolutions round down, pools round up)."""
    sizes: dict[str, int] = {}
    for name, _, kernel, stride, pad, dilation, _ in PROTOTXT_CONVS[:-1]:
        if name in PROTOTXT_POOLS:
            k, s, p = PROTOTXT_POOLS[name]
            side = math.ceil((side + 2 * p - k) / s) + 1
            if name == "fc6":
                sizes["pool5"] = side
        side = (side + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
        sizes[name] = side
    return sizes


def test_parameter_count_is_the_prototxts() -> None:
    assert prototxt_parameters() == 58_127_353
    assert sum(p.numel() for p in AlexNet().parameters()) == prototxt_parameters()


def test_every_layer_has_the_prototxts_hyperparameters() -> None:
    net = AlexNet()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == len(PROTOTXT_CONVS)
    for conv, (name, out, kernel, stride, pad, dilation, group) in zip(convs, PROTOTXT_CONVS, strict=True):
        assert (conv.out_channels, conv.kernel_size, conv.stride) == (out, (kernel,) * 2, (stride,) * 2), name
        assert (conv.padding, conv.dilation, conv.groups) == ((pad,) * 2, (dilation,) * 2, group), name
        assert conv.bias is not None, name
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"):
        block = list(net.get_submodule(name))
        conv_at = next(i for i, m in enumerate(block) if isinstance(m, nn.Conv2d))
        bn, relu = block[conv_at + 1 :]
        assert isinstance(bn, nn.BatchNorm2d) and not bn.affine, name  # BatchNorm without scale
        assert isinstance(relu, nn.ReLU), name
        pools = [m for m in block[:conv_at] if isinstance(m, nn.MaxPool2d)]
        expected = [PROTOTXT_POOLS[name]] if name in PROTOTXT_POOLS and name != "fc6" else []
        assert [(p.kernel_size, p.stride, p.padding) for p in pools] == expected, name
    (pool5,) = net.pool5
    assert (pool5.kernel_size, pool5.stride, pool5.padding) == PROTOTXT_POOLS["fc6"]
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in net.modules())  # no LRN
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.fc8.modules())  # fc8 has none


def test_taps_at_180_have_caffes_sizes_and_the_stated_strides() -> None:
    net = build_model("alexnet", width=0.25).eval()
    with torch.no_grad():
        features = net.forward_features(100 * torch.rand(2, 1, 180, 180))
    sizes = caffe_sizes(180)
    assert sizes == {
        "conv1": 45,
        "conv2": 23,
        "conv3": 12,
        "conv4": 12,
        "conv5": 12,
        "pool5": 12,
        "fc6": 12,
        "fc7": 12,
    }
    assert net.tap_strides() == dict(zip(net.tap_names, (4, 8, 16, 16, 16, 16, 16, 16), strict=True))
    assert net.tap_channels() == dict(zip(net.tap_names, (24, 64, 96, 96, 64, 64, 1024, 1024), strict=True))
    for name, feature in features.items():
        assert feature.shape == (2, net.tap_channels()[name], sizes[name], sizes[name]), name
        assert sizes[name] == math.ceil(180 / net.tap_strides()[name]), name


def test_logits_match_the_ab_targets_of_a_180_crop() -> None:
    net = build_model("alexnet", width=0.25).eval()
    rgb = torch.randint(0, 256, (2, 3, 180, 180), dtype=torch.uint8)
    targets = TargetBuilder(stride=net.output_stride)(rgb)
    assert targets.ab.shape[-2:] == (23, 23)  # data_ab_ss: 1 x 1 convolution with stride 8
    with torch.no_grad():
        logits = net(targets.lightness)
        fc8 = net.fc8(net.forward_features(targets.lightness, "fc7")["fc7"])
    assert logits.shape == (2, Q, 23, 23) and fc8.shape[-2:] == (12, 12)
    # fc8_upsample (Resize to gt_ab_ss): bilinear, pixel centres aligned; scikit-image as the reference.
    expected = resize(fc8[1, :5].double().numpy(), (5, 23, 23), order=1, mode="edge", anti_aliasing=False)
    torch.testing.assert_close(logits[1, :5].double(), torch.from_numpy(expected), rtol=1e-5, atol=1e-6)


def test_width_keeps_the_groups_divisible() -> None:
    for width in (0.1, 0.3, 1 / 16):
        net = AlexNet(width=width)
        assert all(c % 2 == 0 for c in net.tap_channels().values())
        net(torch.full((1, 1, 64, 64), 50.0))  # grouped convolutions accept their inputs
    with pytest.raises(ValueError, match="width must be positive"):
        AlexNet(width=0)


def test_colorize_upsamples_its_stride_8_output_to_the_image() -> None:
    net = AlexNet(width=1 / 8).eval()
    lightness = 100 * torch.rand(1, 1, 50, 70)
    assert colorize_lightness(net, lightness).shape == (1, 2, 50, 70)
    assert colorize_lightness(net, lightness, process_size=96).shape == (1, 2, 50, 70)


def test_a_real_trainer_step_builds_targets_and_prior_at_stride_8(photo_dirs, tmp_path: Path) -> None:  # noqa: F811
    root = tmp_path / "run"
    config = tiny_config(
        *photo_dirs,
        root,
        **{"model.arch": "alexnet", "model.arch_options": {"width": 0.25}, "trainer.max_steps": 2},
    )
    cli = run_lightning_cli(["fit", "--config", str(write_config(tmp_path / "run.yaml", config))])
    assert cli.trainer.global_step == 2 and cli.model.targets.stride == 8
    assert json.loads((root / "prior" / "prior.json").read_text())["stride"] == 8
    cli = run_lightning_cli(["validate", "--config", str(tmp_path / "run.yaml"), "--ckpt_path", "last"])
    metrics = cli.trainer.callback_metrics
    assert 0 <= float(metrics["val/auc"]) <= 1 and math.isfinite(float(metrics["val/loss"]))


@pytest.mark.parametrize("freeze_at", ["all", "conv3"])
def test_transfer_sees_the_taps_and_freezes_batchnorm(freeze_at: str) -> None:
    config = EncoderConfig(init="random", arch="alexnet", arch_options={"width": 0.125})
    encoder = build_encoder(config, freeze_at)
    assert encoder.tap_names == ("conv1", "conv2", "conv3", "conv4", "conv5", "pool5", "fc6", "fc7")
    assert not encoder.net.fc8.weight.requires_grad  # the colorization head feeds no tap
    encoder.train()
    before = {k: v.clone() for k, v in encoder.net.state_dict().items() if "running" in k}
    features = encoder(torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8))
    assert {k: tuple(v.shape[1:]) for k, v in features.items()} == {
        name: (
            channels,
            math.ceil(64 / encoder.tap_strides()[name]),
            math.ceil(64 / encoder.tap_strides()[name]),
        )
        for name, channels in encoder.tap_channels().items()
    }
    changed = {
        k.split(".")[0]
        for k, v in encoder.net.state_dict().items()
        if "running" in k and not torch.equal(v, before[k])
    }
    assert changed == (set() if freeze_at == "all" else {"conv4", "conv5", "fc6", "fc7"})
