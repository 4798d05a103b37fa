"""The rebalancing analysis measures what it says on real photos (scikit-image's, via ``builtin``)."""

from __future__ import annotations

import pytest
import torch

from experiments.analysis.rebalancing import BLOCKS, main, weight_statistics


def test_weight_statistics_against_hand_counts() -> None:
    w = torch.ones(4, 2, 2)
    w[0] = 3.0  # one image weighs 3 x the others: sums 12, 4, 4, 4
    stats = weight_statistics(w, torch.tensor([True, True, True, False]))  # the gray one weighs 0
    assert stats["ess_images"] == pytest.approx((12 + 4 + 4) ** 2 / (144 + 16 + 16) / 4)
    assert stats["ess_pixels"] == pytest.approx((12 + 8) ** 2 / (4 * 9 + 8) / 16)
    assert stats["top10_share"] == pytest.approx(12 / 20)


def test_main_on_builtin_photos(capsys: pytest.CaptureFixture[str]) -> None:
    results = main(["--data", "builtin", "--resize", "40", "--crop", "32", "--batch", "6", "--images", "6"])
    assert results[1.0]["ess_pixels"] == pytest.approx(1.0)
    assert results[1.0]["ess_images"] == pytest.approx(1.0)
    assert 0.0 < results[0.5]["ess_pixels"] < 1.0  # rebalancing always costs effective pixels
    assert all(0.0 < results[lam][b] < 1.0 for lam in results for b in BLOCKS)
    assert "lam 0.5: ESS" in capsys.readouterr().out


def test_main_reads_a_pretraining_checkpoint(tmp_path) -> None:
    from selfsup_color.pretrain.cli import run_lightning_cli
    from tests.selfsup_color.pretrain.conftest import tiny_config, write_config, write_photos

    train, val = (
        write_photos(tmp_path / "train", 8)[0].parent,
        write_photos(tmp_path / "val", 2, seed=1)[0].parent,
    )
    config = tiny_config(train, val, tmp_path / "run", **{"trainer.max_steps": 2, "model.prior_images": 8})
    run_lightning_cli(["fit", "--config", str(write_config(tmp_path / "run.yaml", config))])
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    args = ["--data", str(train), "--resize", "40", "--crop", "32", "--batch", "8", "--images", "8"]
    fresh, trained = main(args), main([*args, "--ckpt_path", str(ckpt)])
    assert fresh[0.5]["ess_pixels"] == trained[0.5]["ess_pixels"]  # same crops, same weights
    assert fresh[0.5]["conv1"] != trained[0.5]["conv1"]  # another network: width 1/16, trained
