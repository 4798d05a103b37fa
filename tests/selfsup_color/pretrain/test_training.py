"""Real Lightning runs on tiny real image folders: prior, metrics, resume, non-finite loss, variants."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from selfsup_color import load_prior
from selfsup_color.data import ColorizationDataModule
from selfsup_color.pretrain.checkpoint import load_pretraining_module
from selfsup_color.pretrain.module import ColorizationModule, NonFiniteLossError

from .conftest import net_state, tiny_config


class LossRecorder(Callback):
    """Records the training loss of every step."""

    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def on_train_batch_end(
        self, trainer: Trainer, module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.losses[trainer.global_step - 1] = float(outputs["loss"])


def build(photo_dirs: tuple[Path, Path], root: Path, **model: Any) -> tuple[ColorizationModule, Any]:
    config = tiny_config(*photo_dirs, root)
    seed_everything(0)
    module = ColorizationModule(**{**config["model"], **model})
    data = ColorizationDataModule(**config["data"])
    return module, data


def trainer(root: Path, max_steps: int, callbacks: list[Callback] | None = None, **kwargs: Any) -> Trainer:
    """A Trainer with the tiny config's trainer settings (the CLI tests' settings)."""
    options = tiny_config(root, root, root)["trainer"]
    return Trainer(**{**options, "max_steps": max_steps, "callbacks": callbacks or [], **kwargs})


def test_fit_estimates_the_prior_logs_metrics_and_checkpoints(photo_dirs, tmp_path: Path) -> None:
    module, data = build(photo_dirs, tmp_path)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=2)
    t = trainer(tmp_path, 4, [ckpt], val_check_interval=2, limit_val_batches=1)
    t.fit(module, data)
    # the prior: written with the run, the same as in the module, from the training images only
    record = load_prior(tmp_path / "prior" / "prior.json")
    assert record.n_images + record.n_gray_skipped == 12 and record.n_gray_skipped == 1
    assert torch.allclose(module.prior_probs, record.prior)
    assert (tmp_path / "prior" / "prior.png").is_file()
    weights = module.targets.class_weights.double()
    assert float((record.prior * weights).sum()) == pytest.approx(1.0, abs=1e-5)
    metrics = t.callback_metrics
    for name in ("loss", "auc", "auc_gray", "rebalanced_auc", "rebalanced_auc_gray", "colourfulness"):
        assert math.isfinite(float(metrics[f"val/{name}"])), name
    assert 0 < float(metrics["val/auc_gray"]) < 1
    assert float(metrics["val/colourfulness_truth"]) > 0
    assert any(p.name.startswith("train_colorization") for p in (tmp_path / "images").iterdir())
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()
    # the checkpoint carries the prior: loading it needs no data and no recomputation
    loaded = load_pretraining_module(tmp_path / "ckpt" / "last.ckpt")
    assert torch.equal(loaded.prior_probs, module.prior_probs)
    for key, value in net_state(tmp_path / "ckpt" / "last.ckpt").items():
        assert torch.equal(loaded.state_dict()[key], value)


@pytest.mark.parametrize("at", [2, 3])
def test_resume_continues_with_the_same_losses(photo_dirs, tmp_path: Path, at: int) -> None:
    """6 steps in one go == a run whose periodic checkpoint (mid-epoch at 2, epoch end at 3) is resumed.

    Epochs have 3 batches. The resumed run starts from another random init and sees the same batches.
    """
    module, data = build(photo_dirs, tmp_path / "a")
    straight = LossRecorder()
    trainer(tmp_path / "a", 6, [straight]).fit(module, data)

    module, data = build(photo_dirs, tmp_path / "b")
    first = LossRecorder()
    ckpt = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", filename="{step}", every_n_train_steps=at, save_top_k=-1
    )
    trainer(tmp_path / "b", at + 1, [first, ckpt]).fit(module, data)  # runs one step past the checkpoint

    config = tiny_config(*photo_dirs, tmp_path / "c")
    seed_everything(123)  # another random init: the checkpoint's weights must win
    module, data = ColorizationModule(**config["model"]), ColorizationDataModule(**config["data"])
    second = LossRecorder()
    t = trainer(tmp_path / "c", 6, [second])
    t.fit(module, data, ckpt_path=tmp_path / "ckpt" / f"step={at}.ckpt")
    assert t.global_step == 6 and sorted(second.losses) == list(range(at, 6))
    resumed = {**{s: v for s, v in first.losses.items() if s < at}, **second.losses}
    for step, loss in straight.losses.items():
        assert resumed[step] == pytest.approx(loss, rel=1e-6, abs=1e-7), step


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(
    photo_dirs, tmp_path: Path
) -> None:
    module, data = build(photo_dirs, tmp_path)
    forward = module.net.forward

    def poisoned(lightness: torch.Tensor) -> torch.Tensor:
        out = forward(lightness)
        return out * math.nan if module.global_step >= 3 else out

    object.__setattr__(module, "_forward", poisoned)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=2)
    with pytest.raises(NonFiniteLossError, match="global step 3"):
        trainer(tmp_path, 8, [ckpt]).fit(module, data)
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 2
    assert all(
        torch.isfinite(v).all()
        for v in saved["state_dict"].values()
        if v.is_floating_point() and not v.isnan().all()
    )


VARIANTS = [("classification", 1.0), ("regression", 0.5), ("regression", None)]


@pytest.mark.parametrize(("loss", "lam"), VARIANTS)
def test_ablation_variants_train(photo_dirs, tmp_path: Path, loss: str, lam: float | None) -> None:
    module, data = build(photo_dirs, tmp_path, loss=loss, lam=lam)
    t = trainer(tmp_path, 2, limit_val_batches=1, val_check_interval=2)
    t.fit(module, data)
    assert math.isfinite(float(t.callback_metrics["val/loss"]))
    if module.hparams.lam == 1.0:  # no rebalancing: every pixel weighs 1
        assert torch.allclose(module.targets.class_weights, torch.ones(313))
    else:
        assert module.targets.class_weights.max() > 2 * module.targets.class_weights.min()
    if loss == "regression":
        assert module.net(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 8, 8)


def test_default_lam_is_the_papers_for_each_loss() -> None:
    """Rebalanced cross-entropy, but the unweighted L2 baseline (a rebalanced L2 over-saturates)."""
    assert ColorizationModule().hparams.lam == 0.5
    assert ColorizationModule(loss="regression").hparams.lam == 1.0
    assert ColorizationModule(loss="regression", lam=0.5).hparams.lam == 0.5


def test_bad_settings_fail_early() -> None:
    with pytest.raises(ValueError, match="loss must be one of the registered pretexts"):
        ColorizationModule(loss="hinge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lr_milestones"):
        ColorizationModule(lr_milestones=(10, 5), lr_factors=(0.1, 0.1))
    with pytest.raises(TypeError, match="wdith"):
        ColorizationModule(arch_options={"wdith": 2})


def test_bf16_mixed_and_channels_last_train_with_exact_targets(photo_dirs, tmp_path: Path) -> None:
    """Under bf16 autocast the network runs in bf16 but the targets stay float32 and exact."""
    module, data = build(photo_dirs, tmp_path, channels_last=True)
    t = trainer(tmp_path, 2, precision="bf16-mixed", limit_val_batches=1, val_check_interval=2)
    t.fit(module, data)
    assert math.isfinite(float(t.callback_metrics["train/loss"]))
    batch = next(iter(data.val_dataloader()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = module.prepare(batch)
    plain = module.prepare(batch)
    assert under_autocast.lightness.dtype == torch.float32
    assert torch.equal(under_autocast.lightness, plain.lightness)
    assert torch.equal(under_autocast.targets.weight, plain.targets.weight)
