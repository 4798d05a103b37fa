"""Encoder loading: strict, from checkpoints and exported weights; random baselines; freezing up to a tap."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selfsup_color.models import build_model
from transfer.encoder import (
    EncoderConfig,
    LightnessEncoder,
    build_encoder,
    export_encoder,
    load_network,
    parameters_up_to,
    save_weights,
)

OPTIONS = {"width": 0.125}


def lightning_checkpoint(
    path: Path, net: torch.nn.Module, arch: str = "eccv16", options: dict | None = None
) -> Path:
    """A file shaped like a pretraining checkpoint: hyperparameters and ``net.*`` + prior weights."""
    state = {f"net.{k}": v for k, v in net.state_dict().items()} | {
        "prior_probs": torch.full((313,), 1 / 313)
    }
    hparams = {"arch": arch, "arch_options": options if options is not None else OPTIONS}
    torch.save({"state_dict": state, "hyper_parameters": hparams, "global_step": 7}, path)
    return path


@pytest.fixture()
def trained(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(3)
    net = build_model("eccv16", **OPTIONS)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))  # weights no fresh initialisation would give
    return net, lightning_checkpoint(tmp_path / "pre.ckpt", net)


def test_pretrained_weights_are_loaded_exactly(trained: tuple[torch.nn.Module, Path]) -> None:
    net, path = trained
    loaded, report = load_network(EncoderConfig(ckpt_path=str(path)))
    assert report is not None and report.ok
    for name, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_exported_weights_round_trip(trained: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    net, path = trained
    exported = export_encoder(path, tmp_path / "enc.pt")
    loaded, _ = load_network(EncoderConfig(ckpt_path=str(exported)))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in net.state_dict().items())
    assert "prior_probs" not in torch.load(exported, weights_only=True)["state_dict"]


def test_random_baseline_has_the_architecture_but_not_the_weights(
    trained: tuple[torch.nn.Module, Path],
) -> None:
    net, path = trained
    random, report = load_network(EncoderConfig(ckpt_path=str(path), init="random"))
    assert report is None and type(random) is type(net)
    assert {k: v.shape for k, v in random.state_dict().items()} == {
        k: v.shape for k, v in net.state_dict().items()
    }
    assert not torch.equal(random.state_dict()["conv1.0.weight"], net.state_dict()["conv1.0.weight"])
    again, _ = load_network(EncoderConfig(ckpt_path=str(path), init="random"))
    assert torch.equal(again.state_dict()["conv1.0.weight"], random.state_dict()["conv1.0.weight"])  # seeded


def test_an_l2_regression_checkpoint_loads_with_its_two_output_head(tmp_path: Path) -> None:
    from selfsup_color.pretrain.module import ColorizationModule

    module = ColorizationModule(arch="eccv16", arch_options=OPTIONS, loss="regression")
    path = tmp_path / "l2.ckpt"
    state = {k: v for k, v in module.state_dict().items() if k.startswith("net.")}
    torch.save({"state_dict": state, "hyper_parameters": dict(module.hparams), "global_step": 1}, path)
    loaded, report = load_network(EncoderConfig(ckpt_path=str(path)))
    assert report is not None and report.ok
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in module.net.state_dict().items())
    random, _ = load_network(EncoderConfig(ckpt_path=str(path), init="random"))
    assert random.state_dict().keys() == module.net.state_dict().keys()


def test_wrong_checkpoints_are_refused_with_a_key_report(tmp_path: Path) -> None:
    other = build_model("eccv16", width=0.25)  # same keys, other shapes
    wrong_shape = lightning_checkpoint(tmp_path / "w.ckpt", other, options=OPTIONS)
    with pytest.raises(KeyError, match="shape mismatch"):
        load_network(EncoderConfig(ckpt_path=str(wrong_shape)))
    state = {f"net.{k}": v for k, v in build_model("eccv16", **OPTIONS).state_dict().items()}
    state.pop("net.conv1.0.weight")
    state["net.extra.weight"] = torch.zeros(1)
    torch.save(
        {"state_dict": state, "hyper_parameters": {"arch": "eccv16", "arch_options": OPTIONS}},
        tmp_path / "k.ckpt",
    )
    with pytest.raises(KeyError, match=r"missing: conv1\.0\.weight.*unexpected: extra\.weight"):
        load_network(EncoderConfig(ckpt_path=str(tmp_path / "k.ckpt")))
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 1}}, tmp_path / "not_ours.ckpt")
    with pytest.raises(ValueError, match="not a selfsup-color pretraining checkpoint"):
        load_network(EncoderConfig(ckpt_path=str(tmp_path / "not_ours.ckpt")))
    (tmp_path / "junk.ckpt").write_text("junk")
    with pytest.raises(ValueError, match="cannot read"):
        load_network(EncoderConfig(ckpt_path=str(tmp_path / "junk.ckpt")))
    with pytest.raises(FileNotFoundError, match=r"missing\.ckpt"):
        load_network(EncoderConfig(ckpt_path=str(tmp_path / "missing.ckpt")))


def test_unsafe_pickles_are_not_loaded(tmp_path: Path) -> None:
    import pickle

    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"state_dict": Evil()}))
    with pytest.raises(ValueError, match="cannot read"):
        load_network(EncoderConfig(ckpt_path=str(tmp_path / "evil.ckpt")))


def test_config_errors() -> None:
    with pytest.raises(ValueError, match=r"needs encoder\.ckpt_path"):
        EncoderConfig()
    with pytest.raises(ValueError, match=r"needs encoder\.arch"):
        EncoderConfig(init="random")
    with pytest.raises(ValueError, match="init must be"):
        EncoderConfig(ckpt_path="x", init="imagenet")  # type: ignore[arg-type]


def test_the_encoder_sees_lightness_only() -> None:
    from selfsup_color.core.color import XYZ_FROM_RGB, linear_to_srgb

    encoder = build_encoder(EncoderConfig(init="random", arch="eccv16", arch_options=OPTIONS))
    linear = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    luminance = (linear * torch.tensor(XYZ_FROM_RGB[1]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    colour, gray = linear_to_srgb(linear), linear_to_srgb(luminance.expand(-1, 3, -1, -1))
    # The same luminance, very different colours: the features must not differ.
    assert (colour - gray).abs().max() > 0.3
    a, b = encoder(colour.clamp(0, 1)), encoder(gray.clamp(0, 1))
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)


def test_freezing_up_to_a_tap(trained: tuple[torch.nn.Module, Path]) -> None:
    _, path = trained
    net, _ = load_network(EncoderConfig(ckpt_path=str(path)))
    up_to_conv2 = parameters_up_to(net, "conv2")
    assert up_to_conv2 == {n for n, _ in net.named_parameters() if n.startswith(("conv1.", "conv2."))}
    encoder = LightnessEncoder(net, freeze_at="conv2")
    encoder.train()
    for name, module in net.named_modules():
        if name.startswith(("conv1", "conv2")) and any(True for _ in module.parameters(recurse=False)):
            assert not module.training, name  # frozen BatchNorm keeps its statistics
    head = ("conv8.", "logits.")  # feeds no tap: never trained in transfer
    assert all(
        p.requires_grad == (n not in up_to_conv2 and not n.startswith(head))
        for n, p in net.named_parameters()
    )
    assert not LightnessEncoder(
        build_model("eccv16", **OPTIONS), freeze_at=None
    ).net.logits.weight.requires_grad
    with pytest.raises(KeyError, match="valid taps"):
        LightnessEncoder(net, freeze_at="conv99")
    timm = build_model("timm", backbone="resnet18")
    stem = parameters_up_to(timm, "stem")
    assert stem and all(n.startswith("backbone.conv1") or n.startswith("backbone.bn1") for n in stem)


def test_save_weights_names_its_architecture(tmp_path: Path) -> None:
    net = build_model("eccv16", **OPTIONS)
    path = save_weights(net, "eccv16", OPTIONS, tmp_path / "w.pt", source="test")
    loaded, report = load_network(EncoderConfig(ckpt_path=str(path)))
    assert report is not None and report.ok and loaded.width == OPTIONS["width"]


@pytest.mark.parametrize("freeze_at", ["all", "conv3"])
def test_frozen_parts_keep_their_batchnorm_statistics(freeze_at: str) -> None:
    # eccv16's BatchNorm has no affine parameters: freezing must still stop its statistics.
    encoder = build_encoder(EncoderConfig(init="random", arch="eccv16", arch_options=OPTIONS), freeze_at)
    encoder.train()
    encoder.freeze_beyond(["conv7"])  # its autograd probe must leave every module's mode as it was
    before = {k: v.clone() for k, v in encoder.net.state_dict().items() if "running" in k}
    encoder(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
    changed = {
        k for k, v in encoder.net.state_dict().items() if "running" in k and not torch.equal(v, before[k])
    }
    frozen_blocks = (
        ("conv1.", "conv2.", "conv3.") if freeze_at == "conv3" else tuple(f"conv{i}." for i in range(1, 9))
    )
    assert not {k for k in changed if k.startswith(frozen_blocks)}
    assert bool(changed) == (freeze_at == "conv3")  # the trainable blocks still learn their statistics


def test_table_labels_name_the_run() -> None:
    assert EncoderConfig(ckpt_path="runs/cifar10_cpu/checkpoints/last.ckpt").label == "cifar10_cpu/last.ckpt"
    assert EncoderConfig(ckpt_path="weights/enc.pt").label == "enc.pt"
    random = EncoderConfig(ckpt_path="runs/x/checkpoints/last.ckpt", init="random")
    assert random.label == "random init (x/last.ckpt architecture)"
    assert EncoderConfig(init="random", arch="eccv16").label == "random init (eccv16)"
