"""The kNN probe as a callback of a real pretraining run (``selfsup-color fit``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from selfsup_color.pretrain.cli import run_lightning_cli
from tests.selfsup_color.pretrain.conftest import tiny_config, write_photos
from transfer.classification.callback import KNNProbeCallback
from transfer.classification.data import ClassificationData
from transfer.classification.run import KNNConfig, run_knn
from transfer.encoder import EncoderConfig, save_weights

from .test_classification import image_folder


def test_callback_logs_knn_accuracy_during_pretraining(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    write_photos(photos / "train", 8)
    write_photos(photos / "val", 4, seed=1)
    labelled = image_folder(tmp_path / "labelled", per_class=4)
    config = tiny_config(photos / "train", photos / "val", tmp_path / "run", **{"trainer.max_steps": 4})
    config["trainer"]["val_check_interval"] = 2
    config["trainer"]["check_val_every_n_epoch"] = None
    config["trainer"]["callbacks"] = [
        {
            "class_path": "transfer.classification.callback.KNNProbeCallback",
            "init_args": {"train": str(labelled), "val_fraction": 0.25, "k": 3, "pool_dims": 300},
        }
    ]
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = run_lightning_cli(["fit", "--config", str(path)])
    metrics = cli.trainer.callback_metrics
    assert {f"knn/conv{i}/top1" for i in range(1, 8)} <= set(metrics)
    assert all(0.0 <= float(metrics[f"knn/conv{i}/top1"]) <= 1.0 for i in range(1, 8))
    # The callback's figure is the kNN command's for the same weights and data.
    callback = next(c for c in cli.trainer.callbacks if isinstance(c, KNNProbeCallback))
    net = cli.model.net
    weights = save_weights(net, "eccv16", {"width": 0.0625}, tmp_path / "w.pt")
    data = ClassificationData(str(labelled), None, 0.25, 32, 32, 256, 0, 5000, 1000)
    command = run_knn(
        EncoderConfig(ckpt_path=str(weights)), data, KNNConfig(pool_dims=300, k=3), "cpu", "shades"
    )
    direct = callback.evaluate(net)
    for tap, values in command.metrics.items():
        assert values == pytest.approx(direct[tap])
    assert float(metrics["knn/conv7/top1"]) == pytest.approx(direct["conv7"]["top1"])
    with pytest.raises(ValueError, match="every_n_epochs"):
        KNNProbeCallback(str(labelled), every_n_epochs=0)
    assert torch.is_grad_enabled()
