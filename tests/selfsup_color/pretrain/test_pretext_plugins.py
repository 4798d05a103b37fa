"""Module, colorize and transfer ask the same pretext; a third pretext plugs in from outside the library.

``GaussianPretext`` below is the worked example of ``docs/pretraining.md`` ("Adding a pretext"): it is
defined and registered here, in a test file, and trains, decodes, checkpoints and transfers without
any edit to the library.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer
from torch import Tensor

from selfsup_color.colorize import _predict_ab, colorize_lightness
from selfsup_color.core.checks import compute_dtype
from selfsup_color.core.decode import DEFAULT_TEMPERATURE
from selfsup_color.core.loss import Reduction, classification_loss, reduce_pixels, regression_loss
from selfsup_color.core.targets import ColorizationTargets
from selfsup_color.data import ColorizationDataModule
from selfsup_color.models import build_model
from selfsup_color.pretexts import PRETEXTS, Pretext, RegressionPretext, register_pretext
from selfsup_color.pretrain.checkpoint import load_pretraining_module
from selfsup_color.pretrain.module import ColorizationModule
from transfer.encoder import EncoderConfig, load_network

from .conftest import tiny_config


class GaussianPretext(Pretext):
    """ab as a Gaussian per pixel: 2 means and 2 log-variances, trained by their negative log-likelihood."""

    name = "gaussian_ab"
    num_outputs = 4

    def loss(self, output: Tensor, targets: ColorizationTargets, reduction: Reduction = "batch") -> Tensor:
        mean, log_var = output.to(compute_dtype(output)).split(2, dim=1)
        per_pixel = 0.5 * ((targets.ab - mean).square() * (-log_var).exp() + log_var).sum(1)
        return reduce_pixels(per_pixel, targets.pixel_weight, targets.nongray, reduction)

    def decode(self, output: Tensor, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
        return output[:, :2].to(compute_dtype(output))


OPTIONS = {"width": 0.0625}


@pytest.fixture()
def gaussian() -> Iterator[type[GaussianPretext]]:
    register_pretext(GaussianPretext)
    yield GaussianPretext
    del PRETEXTS[GaussianPretext.name]


def smooth_rgb(n: int, size: int, seed: int) -> Tensor:
    """uint8 N x 3 x size x size colour fields (bilinear from 4 x 4)."""
    field = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(seed)) * 255
    return F.interpolate(field, size=(size, size), mode="bilinear", align_corners=False).round().byte()


def save_checkpoint(module: ColorizationModule, path: Path) -> Path:
    """What Lightning saves of the module: its state and hyperparameters."""
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


@pytest.mark.parametrize("loss", ["classification", "regression", "gaussian_ab"])
def test_module_colorize_and_transfer_agree(gaussian: type, loss: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = ColorizationModule(arch="eccv16", arch_options=OPTIONS, loss=loss).eval()
    assert type(module.pretext) is PRETEXTS[loss]
    t = module.prepare({"rgb": smooth_rgb(3, 32, seed=1)})
    assert t is not None and t.ab.shape[-2:] == (8, 8)
    with torch.no_grad():
        out = module.net(t.lightness)
        module_loss, module_ab = module._loss_and_ab(t, decode=True)
    assert out.shape == (3, PRETEXTS[loss].num_outputs, 8, 8)
    # the module's loss is the pure function's (or, for the plug-in, its own)
    expected = {
        "classification": lambda: classification_loss(out, t.targets, t.pixel_weight, t.nongray),
        "regression": lambda: regression_loss(out, t.ab, t.pixel_weight, t.nongray),
        "gaussian_ab": lambda: GaussianPretext().loss(out, t),
    }[loss]()
    assert torch.equal(module_loss, expected)
    # colorize decodes as the module does, through the module or its bare net (found by its channels)
    assert module_ab is not None
    assert torch.equal(_predict_ab(module, t.lightness, DEFAULT_TEMPERATURE), module_ab)
    assert torch.equal(_predict_ab(module.net, t.lightness, DEFAULT_TEMPERATURE), module_ab)
    full = colorize_lightness(module, t.lightness)
    assert torch.equal(full, F.interpolate(module_ab, size=(32, 32), mode="bilinear", align_corners=False))
    # transfer builds the same network from the checkpoint
    net, report = load_network(EncoderConfig(ckpt_path=str(save_checkpoint(module, tmp_path / "m.ckpt"))))
    assert report is not None and report.ok
    with torch.no_grad():
        assert torch.equal(net.eval()(t.lightness), out)


class HalfPretext(RegressionPretext):
    """The regression network's 2 channels, decoded to half their value: another pretext, as many channels."""

    name = "half_ab"

    def decode(self, output: Tensor, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
        return super().decode(output) / 2


def test_colorize_decodes_with_the_modules_own_pretext(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PRETEXTS, HalfPretext.name, HalfPretext)
    module = ColorizationModule(arch="eccv16", arch_options=OPTIONS, loss="half_ab").eval()
    lightness = torch.linspace(0, 100, 256).view(1, 1, 16, 16)
    with torch.no_grad():
        out = module.net(lightness)
        assert torch.equal(_predict_ab(module, lightness, DEFAULT_TEMPERATURE), out / 2)
        with pytest.raises(ValueError, match="pretexts regression, half_ab all output 2 channels"):
            _predict_ab(module.net, lightness, DEFAULT_TEMPERATURE)  # a bare net: ambiguous


def test_a_pretext_defined_outside_the_library_trains(gaussian: type, photo_dirs, tmp_path: Path) -> None:
    config = tiny_config(*photo_dirs, tmp_path)
    module = ColorizationModule(**{**config["model"], "loss": "gaussian_ab"})
    assert module.hparams.lam == 1.0  # the Pretext default: no rebalancing
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    trainer = Trainer(
        **{**config["trainer"], "max_steps": 1, "limit_val_batches": 1, "val_check_interval": 1}
    )
    trainer.fit(module, ColorizationDataModule(**config["data"]))
    assert trainer.global_step == 1 and math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert 0.0 <= float(trainer.callback_metrics["val/auc"]) <= 1.0
    assert any(not torch.equal(before[k], v) for k, v in module.net.state_dict().items())
    trainer.save_checkpoint(tmp_path / "gaussian.ckpt")
    loaded = load_pretraining_module(tmp_path / "gaussian.ckpt")
    assert isinstance(loaded.pretext, GaussianPretext)
    assert loaded.net(torch.zeros(1, 1, 16, 16)).shape == (1, 4, 4, 4)


# What ColorizationModule(arch="eccv16", arch_options={"width": 0.0625}, loss=...) saved as its
# hyperparameters before pretexts were objects (commit 73b6ded), and the classification/regression lam.
OLD_HPARAMS = {
    "arch": "eccv16", "arch_options": {"width": 0.0625}, "loss": "classification", "lam": 0.5,
    "temperature": 0.38, "k": 10, "sigma": 5.0, "reduction": "batch", "prior": None,
    "prior_images": 10000, "lr": 3e-05, "betas": (0.9, 0.99), "weight_decay": 0.001, "adam_eps": 1e-08,
    "lr_milestones": (200000, 375000), "lr_factors": (1 / 3, 0.1), "warmup_steps": 0,
    "lr_scaling": "none", "base_batch_size": 40, "compile_net": False, "compile_targets": False,
    "channels_last": False, "sync_batchnorm": False, "log_images_every_n_steps": 500,
    "num_log_images": 8, "check_finite_every_n_steps": 1,
}  # fmt: skip


@pytest.mark.parametrize(
    ("loss", "lam", "old_options"), [("classification", 0.5, {}), ("regression", 1.0, {"num_outputs": 2})]
)
def test_checkpoints_written_before_pretexts_load(
    tmp_path: Path, loss: str, lam: float, old_options: dict
) -> None:
    hparams = {**OLD_HPARAMS, "loss": loss, "lam": lam}
    torch.manual_seed(5)
    net = build_model("eccv16", **OPTIONS, **old_options)  # the network the old pretext_options built
    prior = torch.full((313,), 1 / 313, dtype=torch.float64)
    state = {f"net.{k}": v for k, v in net.state_dict().items()} | {"prior_probs": prior}
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": hparams, "global_step": 3}, path)
    module = load_pretraining_module(path)
    assert module.pretext.name == loss and dict(module.hparams) == hparams
    assert all(torch.equal(module.net.state_dict()[k], v) for k, v in net.state_dict().items())
    # and new checkpoints record exactly the same hyperparameters
    assert dict(ColorizationModule(arch="eccv16", arch_options=OPTIONS, loss=loss).hparams) == hparams
