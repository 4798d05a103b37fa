"""Transfer post-processing: BatchNorm absorption keeps every tap; rescaling gives unit-variance layers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from selfsup_color.models import build_model
from tests.transfer.test_encoder import lightning_checkpoint
from transfer.cli import baseline_encoder, main
from transfer.encoder import EncoderConfig, LightnessEncoder, load_network, modules_up_to
from transfer.postprocess import (
    BATCHNORMS,
    FOLDABLE,
    absorb_batchnorm,
    batchnorm_pairs,
    calibration_batch,
    fold_batchnorm,
    postprocess,
)

ECCV16 = ("eccv16", {"width": 0.25})
RESNET18 = ("timm", {"backbone": "resnet18"})


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """The calibration batch (builtin:train crops)."""
    return calibration_batch(crops=12, size=64)


@pytest.fixture(scope="module")
def held_out() -> torch.Tensor:
    """Crops of photos the calibration never sees (builtin:val)."""
    return calibration_batch(crops=8, size=64, seed=1, split="val")


def randomised(arch: str, options: dict, seed: int = 0) -> nn.Module:
    """``arch`` at random init with random BatchNorm statistics and (where present) affine parameters."""
    torch.manual_seed(seed)
    net = build_model(arch, **options).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, BATCHNORMS):
                module.running_mean.normal_(0, 0.5)
                module.running_var.uniform_(0.2, 3.0)
                if module.affine:
                    module.weight.uniform_(-1.5, 1.5)  # negative scales too
                    module.bias.normal_(0, 0.5)
    return net


def taps(net: nn.Module, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
    return LightnessEncoder(net, freeze_at="all").eval()(rgb)


def outputs(net: nn.Module, rgb: torch.Tensor, kinds: tuple[type, ...]) -> dict[str, torch.Tensor]:
    """The output of every module of ``kinds`` while the taps of ``rgb`` are computed (forward hooks)."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:  # None: output unchanged
            seen.setdefault(name, output.detach().clone())  # before an in-place ReLU changes it

        return hook

    hooks = [
        module.register_forward_hook(keep(name))
        for name, module in net.named_modules()
        if isinstance(module, kinds)
    ]
    taps(net, rgb)
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize(
    ("layer", "norm", "shape"),
    [
        (nn.Conv2d(3, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5), (2, 3, 9, 9)),
        (nn.Conv2d(4, 6, 3, groups=2), nn.BatchNorm2d(6, affine=False), (2, 4, 9, 9)),
        (nn.ConvTranspose2d(3, 4, 4, stride=2, padding=1), nn.BatchNorm2d(4), (2, 3, 5, 5)),
        (nn.Linear(7, 5), nn.BatchNorm1d(5, affine=False), (6, 7)),
    ],
)
def test_folding_a_batchnorm_reproduces_layer_then_batchnorm(
    layer: nn.Module, norm: nn.Module, shape
) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        norm.running_mean.normal_()
        norm.running_var.uniform_(0.1, 4)
        if norm.affine:
            norm.weight.normal_()
            norm.bias.normal_()
    x = torch.randn(shape)
    expected = norm.eval()(layer(x))
    fold_batchnorm(layer, norm)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_absorption_keeps_every_resnet_tap_and_removes_its_batchnorms(held_out: torch.Tensor) -> None:
    net = randomised(*RESNET18)
    before = taps(net, held_out)
    record = absorb_batchnorm(net)
    after = taps(net, held_out)
    assert len(record["absorbed"]) == 20 and record["kept"] == []  # stem + 8 blocks x 2 + 3 downsamples
    for name, value in before.items():
        scale = float(value.abs().max())
        torch.testing.assert_close(after[name], value, rtol=1e-5, atol=1e-5 * scale)
    ran = modules_up_to(net, net.tap_names[-1])
    assert not [n for n in ran if isinstance(net.get_submodule(n), BATCHNORMS)]
    assert all(net.get_submodule(layer).bias is not None for layer, _ in record["absorbed"])


def test_eccv16_batchnorms_follow_a_relu_and_stay(held_out: torch.Tensor) -> None:
    """conv -> ReLU(inplace) -> BatchNorm: the BatchNorm's input *is* the conv's output tensor (in place),
    but a ReLU ran in between, so nothing may be folded; the taps are left bit-identical."""
    net = randomised(*ECCV16)
    before = taps(net, held_out)
    pairs, kept = batchnorm_pairs(net)
    assert pairs == []
    assert kept == [f"{tap}.{len(net.get_submodule(tap)) - 1}" for tap in net.tap_names]
    assert absorb_batchnorm(net) == {"absorbed": [], "kept": kept}
    for name, value in taps(net, held_out).items():
        assert torch.equal(value, before[name])


@pytest.mark.parametrize(("arch", "options"), [ECCV16, RESNET18])
def test_rescaled_layers_have_unit_variance_on_the_batch(
    arch: str, options: dict, photos: torch.Tensor, held_out: torch.Tensor
) -> None:
    net = randomised(arch, options)
    before = taps(net, held_out)
    record = postprocess(net, "rescale", photos, mean=0.25)
    layers = outputs(net, photos, FOLDABLE)
    assert sorted(layers) == sorted(
        n for n in record["rescaled"] if isinstance(net.get_submodule(n), FOLDABLE)
    )
    assert len(layers) == {"eccv16": 19, "timm": 20}[arch]
    for name, value in layers.items():
        flat = value.transpose(0, 1).reshape(value.shape[1], -1).double()
        live = flat.std(dim=1, correction=0) > 1e-6
        assert live.float().mean() > 0.5, name
        torch.testing.assert_close(flat.mean(dim=1), torch.full_like(flat[:, 0], 0.25), atol=1e-4, rtol=0)
        torch.testing.assert_close(
            flat[live].std(dim=1, correction=0), torch.ones_like(flat[live, 0]), atol=1e-4, rtol=0
        )
    for name, value in outputs(net, held_out, FOLDABLE).items():  # photos it never saw: roughly
        assert 0.4 < float(value.transpose(0, 1).reshape(value.shape[1], -1).std(dim=1).mean()) < 2.5, name
    after = taps(net, held_out)
    stds = {name: float(value.std()) for name, value in after.items()}
    assert all(0.3 < std < 3 for std in stds.values()), stds
    assert max(stds.values()) / min(stds.values()) < 3, stds
    assert not all(torch.allclose(after[n], before[n]) for n in before)


def test_rescaling_lifts_the_shrinking_random_eccv16(held_out: torch.Tensor) -> None:
    """At random init (BatchNorm statistics 0 / 1) eccv16's taps shrink with depth; rescaled they do not."""
    net = build_model(*ECCV16[:1], **ECCV16[1]).eval()
    before = {name: float(value.std()) for name, value in taps(net, held_out).items()}
    postprocess(net, "rescale")
    after = {name: float(value.std()) for name, value in taps(net, held_out).items()}
    assert before["conv7"] < 0.75 * before["conv1"] and before["conv7"] < 0.2, before
    assert all(0.5 < std < 2 for std in after.values()), after


def test_the_random_baseline_is_post_processed_too(tmp_path: Path) -> None:
    ckpt = lightning_checkpoint(tmp_path / "last.ckpt", randomised(*ECCV16), *ECCV16)
    baseline = baseline_encoder(EncoderConfig(ckpt_path=str(ckpt), postprocess="rescale"))
    assert (baseline.init, baseline.postprocess) == ("random", "rescale")
    net, _ = load_network(baseline)
    conv = outputs(net, calibration_batch(), FOLDABLE)["conv7.4"]  # the last conv: calibrated exactly
    assert abs(float(conv.std()) - 1) < 0.05
    assert baseline.label == "random init (last.ckpt architecture, rescale)"


@pytest.mark.parametrize(("arch", "options", "mode"), [(*ECCV16, "rescale"), (*RESNET18, "absorb_bn")])
def test_exported_post_processed_weights_load_to_the_same_taps(
    arch: str, options: dict, mode: str, tmp_path: Path, held_out: torch.Tensor
) -> None:
    ckpt = lightning_checkpoint(tmp_path / "last.ckpt", randomised(arch, options), arch, options)
    out = tmp_path / "encoder.pt"
    assert main(["export", "--ckpt_path", str(ckpt), "--out", str(out), "--postprocess", mode]) == 0
    record = torch.load(out, weights_only=True)["postprocess"]
    assert record["mode"] == mode
    processed, _ = load_network(EncoderConfig(ckpt_path=str(ckpt), postprocess=mode))
    loaded, report = load_network(EncoderConfig(ckpt_path=str(out)))
    assert report is not None and report.ok
    expected = taps(processed, held_out)
    for name, value in taps(loaded, held_out).items():
        assert torch.equal(value, expected[name]), name
    original, _ = load_network(EncoderConfig(ckpt_path=str(ckpt)))
    if mode == "absorb_bn":  # absorption alone changes no tap
        for name, value in taps(original, held_out).items():
            torch.testing.assert_close(expected[name], value, rtol=1e-5, atol=1e-5 * float(value.abs().max()))


def weight_gradient_ratios(net: nn.Module, rgb: torch.Tensor, seed: int) -> list[float]:
    """``sqrt(mean(grad^2) / mean(W^2))`` per conv / linear layer, for a seeded Gaussian gradient at the
    deepest tap (computed here independently of :mod:`transfer.postprocess`)."""
    encoder = LightnessEncoder(net, freeze_at=None).eval()  # trains what feeds the taps
    layers = [m for m in net.modules() if isinstance(m, FOLDABLE) and m.weight.requires_grad]
    top = encoder(rgb, net.tap_names[-1])[net.tap_names[-1]]
    noise = torch.randn(top.shape, generator=torch.Generator().manual_seed(seed))
    top.backward(noise)
    ratios = [
        float((m.weight.grad.square().mean() / m.weight.detach().square().mean()).sqrt())
        for m in layers
        if m.weight.grad is not None  # the colorization head feeds no tap
    ]
    net.zero_grad()
    return ratios


def test_gradient_ratio_calibration_equalises_a_homogeneous_network(photos: torch.Tensor) -> None:
    """timm's VGG-11 (convolutions, ReLUs, max-pooling, no BatchNorm): one round of magic_init's ``-cs``
    brings the layers' gradient-to-weight ratios together; each round takes the deepest tap's mean
    per-channel std ``o`` to ``sqrt(o)``, towards 1."""
    torch.manual_seed(0)
    net = build_model("timm", backbone="vgg11").eval()
    deepest = net.tap_names[-1]
    before = weight_gradient_ratios(net, photos, seed=5)
    assert not 0.5 < channel_std(taps(net, photos)[deepest]) < 2
    record = postprocess(net, "calibrate", photos)
    after = weight_gradient_ratios(net, photos, seed=5)
    assert record["absorbed"] == [] and record["rounds"] >= 2
    assert max(before) / min(before) > 5, before
    assert max(after) / min(after) < 1.5, after
    assert 0.5 < channel_std(taps(net, photos)[deepest]) < 2


def channel_std(value: torch.Tensor) -> float:
    return float(value.transpose(0, 1).reshape(value.shape[1], -1).std(dim=1).mean())


def test_gradient_ratio_calibration_refuses_batchnorms_left_in_place() -> None:
    with pytest.raises(ValueError, match=r"BatchNorms \['conv1.4'"):
        postprocess(randomised(*ECCV16), "calibrate", calibration_batch(crops=2, size=32))


def test_the_colorization_alexnet_goes_through_the_authors_whole_post_processing(
    held_out: torch.Tensor, photos: torch.Tensor
) -> None:
    """alexnet is conv -> BatchNorm -> ReLU, as the authors' net: every BatchNorm folds with its taps
    unchanged (``absorb_bn``), then the net is BatchNorm-free, so magic_init's ``-cs`` calibration runs."""
    net = randomised("alexnet", {"width": 0.25})
    before = taps(net, held_out)
    record = absorb_batchnorm(net)
    assert len(record["absorbed"]) == 7 and record["kept"] == []  # conv1..conv5, fc6, fc7
    for name, value in taps(net, held_out).items():
        scale = float(value.abs().max())
        torch.testing.assert_close(value, before[name], rtol=1e-5, atol=1e-5 * scale)
    calibrated = postprocess(randomised("alexnet", {"width": 0.25}), "calibrate", photos)
    assert len(calibrated["absorbed"]) == 7 and calibrated["rounds"] >= 1
