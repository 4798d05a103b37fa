"""The ``selfsup-color`` command: strict configs, fit/validate/resume, prior, colorize, wandb offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from selfsup_color import auc, nearest_bin, rebalanced_auc, rgb_to_lab, smooth_prior
from selfsup_color.cli import main
from selfsup_color.colorize import colorize_lightness
from selfsup_color.core.prior import load_prior
from selfsup_color.pretrain.checkpoint import load_pretraining_module
from selfsup_color.pretrain.cli import run_lightning_cli

from ..wandb_records import finished_run_records
from .conftest import tiny_config, write_config


def test_print_config_round_trips_and_unknown_keys_fail(photo_dirs, tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path / "run.yaml", tiny_config(*photo_dirs, tmp_path / "run"))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["arch_options"] == {"width": 0.0625}
    assert printed["model"]["lam"] is None and printed["model"]["temperature"] == 0.38  # None: per loss
    assert printed["data"]["crop"] == 32 and printed["checkpoint"]["save_last"] is True
    bad = write_config(
        tmp_path / "bad.yaml", tiny_config(*photo_dirs, tmp_path / "run", **{"model.lamda": 1})
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(bad)])
    assert exit_info.value.code not in (0, None)
    assert "lamda" in capsys.readouterr().err


def test_fit_then_resume_last_then_validate(photo_dirs, tmp_path: Path) -> None:
    root = tmp_path / "run"
    config = write_config(tmp_path / "run.yaml", tiny_config(*photo_dirs, root))
    cli = run_lightning_cli(["fit", "--config", str(config)])
    assert cli.trainer.global_step == 4
    last = root / "checkpoints" / "last.ckpt"
    assert last.is_file() and (root / "prior" / "prior.json").is_file()
    best = list((root / "checkpoints").glob("best-step=*.ckpt"))
    assert [p.name for p in best] == ["best-step=3.ckpt"]  # the one validation ran after step 3
    assert torch.load(last, weights_only=True)["global_step"] == 4
    cli = run_lightning_cli(
        ["fit", "--config", str(config), "--trainer.max_steps", "6", "--ckpt_path", "last"]
    )
    assert cli.trainer.global_step == 6
    assert torch.load(last, weights_only=True)["global_step"] == 6
    cli = run_lightning_cli(["validate", "--config", str(config), "--ckpt_path", str(last)])
    metrics = cli.trainer.callback_metrics
    assert 0 <= float(metrics["val/auc"]) <= 1 and "val/colourfulness" in metrics
    cli = run_lightning_cli(["test", "--config", str(config), "--ckpt_path", str(last)])
    assert float(cli.trainer.callback_metrics["test/auc"]) == pytest.approx(float(metrics["val/auc"]))


def test_wandb_offline_run_writes_its_files(photo_dirs, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc: no key, so offline by default
    root = tmp_path / "run"
    config = tiny_config(*photo_dirs, root)
    del config["trainer"]["logger"]  # the default logger: SafeWandbLogger
    config["trainer"]["log_every_n_steps"] = 1
    run_lightning_cli(["fit", "--config", str(write_config(tmp_path / "run.yaml", config))])
    import wandb

    wandb.finish()
    runs = list((root / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((root / "wandb").iterdir())
    records = finished_run_records(next(runs[0].glob("run-*.wandb")))
    # wandb-core folds config updates that arrive before the run record into it (timing-dependent)
    updates = [r.run.config for r in records["run"]] + [r.config for r in records.get("config", [])]
    config = {item.key: json.loads(item.value_json) for u in updates for item in u.update}
    assert config["lam"] == 0.5 and config["arch"] == "eccv16" and config["arch_options"] == {"width": 0.0625}
    logged = {item.key or "/".join(item.nested_key) for r in records["history"] for item in r.history.item}
    assert {"train/loss", "train/lr", "val/loss", "val/rebalanced_auc", "val/colourfulness"} <= logged
    assert any(key.startswith("train/colorization") for key in logged) and any(
        k.startswith("prior") for k in logged
    )
    assert "exit" in records
    media = runs[0] / "files" / "media" / "images"
    images = [p.relative_to(media).as_posix() for p in media.rglob("*.png")]
    assert any(name.startswith("train/colorization") for name in images)
    assert any(name.startswith("prior") for name in images)
    assert (runs[0] / "files" / "prior" / "prior.json").is_file()


def test_prior_and_colorize_commands(photo_dirs, tmp_path: Path, capsys) -> None:
    train, val = photo_dirs
    assert (
        main(
            [
                "prior",
                "--data",
                str(train),
                "--out",
                str(tmp_path / "prior"),
                "--resize",
                "40",
                "--crop",
                "32",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    record = load_prior(tmp_path / "prior" / "prior.json")
    assert record.n_images == 11 and record.n_gray_skipped == 1 and record.source == str(train)
    assert Image.open(tmp_path / "prior" / "prior.png").size[0] > 100

    root = tmp_path / "run"
    config = tiny_config(
        *photo_dirs, root, **{"model.prior": str(tmp_path / "prior" / "prior.json"), "trainer.max_steps": 2}
    )
    run_lightning_cli(["fit", "--config", str(write_config(tmp_path / "run.yaml", config))])
    assert not (root / "prior").exists(), "a given prior must not be re-estimated"
    odd = Image.open(val / "img_000.png").resize((45, 37))
    odd.save(tmp_path / "odd.jpg")
    out = tmp_path / "colorized"
    assert (
        main(
            [
                "colorize",
                "--ckpt_path",
                str(root / "checkpoints" / "last.ckpt"),
                "--out",
                str(out),
                "--process_size",
                "0",
                str(val),
                str(tmp_path / "odd.jpg"),
            ]
        )
        == 0
    )
    written = sorted(p for p in out.iterdir() if p.name != "config.yaml")
    assert len(written) == 5
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["process_size"] == 0 and saved["inputs"] == [str(val), str(tmp_path / "odd.jpg")]
    assert Image.open(out / "odd_color.png").size == (45, 37)
    assert "wrote 5 colorized" in capsys.readouterr().out

    # evaluate: the scores equal the core metrics computed here over the same predictions
    ckpt = root / "checkpoints" / "last.ckpt"
    evaluated = tmp_path / "evaluated"
    with pytest.warns(FutureWarning, match="--ckpt is deprecated; use --ckpt_path"):  # the old flags
        assert main(["evaluate", "--ckpt", f"tiny={ckpt}", "--out", str(evaluated), "--process-size", "24",
                     "--grid", "2", str(val)]) == 0  # fmt: skip
    record = json.loads((evaluated / "scores.json").read_text())
    module = load_pretraining_module(ckpt)
    rgb = torch.stack([torch.from_numpy(np.array(Image.open(p))) for p in sorted(val.iterdir())])
    lab = rgb_to_lab(rgb.permute(0, 3, 1, 2).float() / 255)
    pred = colorize_lightness(module, lab[:, :1], module.hparams.temperature, process_size=24)
    own_prior = smooth_prior(torch.bincount(nearest_bin(lab[:, 1:]).reshape(-1), minlength=313).double())
    expected = {
        "gray": torch.zeros_like(lab[:, 1:]),
        "tiny": pred,
    }
    assert list(record["scores"]) == ["gray", "tiny"] and record["images"] == 4
    for name, ab in expected.items():
        assert record["scores"][name]["auc"] == pytest.approx(float(auc(ab, lab[:, 1:])), abs=1e-9)
        assert record["scores"][name]["rebalanced_auc"] == pytest.approx(
            float(rebalanced_auc(ab, lab[:, 1:], own_prior)), abs=1e-9
        )
    assert record["scores"]["gray"]["colourfulness"] == pytest.approx(0.0, abs=0.05)  # Lab rounding
    assert record["methods"]["tiny"]["checkpoint"] == str(ckpt)
    assert Image.open(evaluated / "grid.png").size[0] > 100
    assert "| tiny |" in (evaluated / "scores.md").read_text()
