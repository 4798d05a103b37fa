"""Classification transfer: pooling, one-pass probes, caches, kNN, fine-tuning, the CLI and reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.selfsup_color.data.images import picture, save
from tests.selfsup_color.wandb_records import finished_run_records, md5_base64
from transfer.classification.cache import extract_features, resolve_mode, shard
from transfer.classification.data import ClassificationData, labelled_folder, split_labelled, subsample
from transfer.classification.knn import knn_scores, topk_accuracy
from transfer.classification.probes import LinearProbes, pool_features, pool_size, pool_sizes, tap_shapes
from transfer.cli import main
from transfer.common import OptimConfig
from transfer.encoder import EncoderConfig, build_encoder
from transfer.report import read_results

OPTIONS = {"width": 0.125}
RANDOM = EncoderConfig(init="random", arch="eccv16", arch_options=OPTIONS)


def image_folder(root: Path, per_class: int = 6, size: int = 40) -> Path:
    """Three classes whose pictures differ in brightness (visible in L), as ``root/<class>/*.png``."""
    for label, name in enumerate(["dark", "mid", "bright"]):
        for i in range(per_class):
            pixels = picture(size, size, seed=10 * label + i).astype(np.float32) * 0.3 + 80 * label
            save(root / name / f"{i}.png", np.clip(pixels, 0, 255).astype(np.uint8))
    return root


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    return image_folder(tmp_path / "train", 8), image_folder(tmp_path / "val", 4)


def test_pool_size_targets_about_9000_values() -> None:
    assert pool_size(96, 55, 55) == 10  # the paper's conv1: 96 x 10 x 10 = 9600
    assert pool_size(256, 13, 13) == 6  # conv5 of AlexNet: 256 x 6 x 6 = 9216
    assert pool_size(512, 4, 4) == 4  # never more cells than the map has
    assert pool_size(20000, 8, 8) == 1
    encoder = build_encoder(RANDOM)
    shapes = tap_shapes(encoder, list(encoder.tap_names), 64)
    sizes = pool_sizes(shapes, 9000)
    pooled = pool_features(encoder(torch.zeros(2, 3, 64, 64, dtype=torch.uint8)), sizes)
    for name, (channels, height, _) in shapes.items():
        assert pooled[name].shape == (2, channels * sizes[name] ** 2)
        assert sizes[name] == min(height, max(1, round((9000 / channels) ** 0.5)))
    with pytest.raises(ValueError, match="positive"):
        pool_size(0, 4, 4)


def test_fixed_pool_sizes_override_pool_dims_per_tap() -> None:
    shapes = {"conv1": (96, 57, 57), "conv3": (384, 14, 14), "conv5": (256, 14, 14)}
    # the official linear test's conv1 10 x 10 and conv3 5 x 5; conv5 from pool_dims (256 x 6 x 6)
    assert pool_sizes(shapes, 9000, {"conv1": 10, "conv3": 5}) == {"conv1": 10, "conv3": 5, "conv5": 6}
    assert pool_sizes(shapes, 9000, {"conv3": 4})["conv3"] == 4 != pool_sizes(shapes, 9000)["conv3"]
    with pytest.raises(ValueError, match=r"\['fc7'\] that are not probed"):
        pool_sizes(shapes, 9000, {"fc7": 1})
    with pytest.raises(ValueError, match=r"'conv3' must be in 1\.\.14"):
        pool_sizes(shapes, 9000, {"conv3": 15})


def test_one_pass_trains_every_probe_with_one_encoder_forward_per_batch(folders: tuple[Path, Path]) -> None:
    data = ClassificationData(
        str(folders[0]), str(folders[1]), resize=36, crop=32, batch_size=8, num_workers=0
    )
    train, _ = data.splits()
    encoder = build_encoder(RANDOM)
    taps = list(encoder.tap_names)
    shapes = tap_shapes(encoder, taps, 32)
    probes = LinearProbes(
        encoder, pool_sizes(shapes, 500), {t: s[0] for t, s in shapes.items()}, 3, OptimConfig(lr=0.1)
    )
    before = {name: p.detach().clone() for name, p in probes.heads.named_parameters()}
    frozen = {name: p.detach().clone() for name, p in encoder.named_parameters()}
    calls = []
    encoder.net.register_forward_hook(lambda *_: calls.append(1))
    original = encoder.net.forward_features
    encoder.net.forward_features = lambda *a, **k: (calls.append(1), original(*a, **k))[1]  # type: ignore[method-assign]
    optimizer = probes.configure_optimizers()["optimizer"]
    batches = list(data.loader(train, train=True))
    for batch in batches:
        optimizer.zero_grad()
        probes.training_step(batch, 0).backward()
        optimizer.step()
    assert len(calls) == len(batches)  # one encoder pass per batch for all seven taps
    for name, p in probes.heads.named_parameters():
        assert not torch.equal(p, before[name]), name  # every probe learned
    assert all(torch.equal(p, frozen[n]) for n, p in encoder.named_parameters())
    assert all(not p.requires_grad for p in encoder.parameters())
    with pytest.raises(ValueError, match="fully frozen"):
        LinearProbes(build_encoder(RANDOM, freeze_at=None), {"conv1": 1}, {"conv1": 4}, 3, OptimConfig())


def test_probes_on_images_get_new_crops_every_epoch(folders: tuple[Path, Path]) -> None:
    """Without a feature cache, epoch 1 reads other random crops than epoch 0 (in a worker process too)."""
    from lightning.pytorch import Callback, Trainer

    data = ClassificationData(
        str(folders[0]), str(folders[1]), resize=48, crop=32, batch_size=8, num_workers=1
    )
    train, _ = data.splits()
    encoder = build_encoder(RANDOM)
    shapes = tap_shapes(encoder, ["conv1"], 32)
    probes = LinearProbes(encoder, pool_sizes(shapes, 500), {"conv1": shapes["conv1"][0]}, 3, OptimConfig())
    seen: list[tuple[int, torch.Tensor]] = []

    class Record(Callback):
        def on_train_batch_start(self, trainer: Trainer, module: object, batch: dict, index: int) -> None:
            seen.append((trainer.current_epoch, batch["rgb"].clone()))

    loader = data.loader(train, train=True, shuffle=False)  # same order: only the crops can differ
    trainer = Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[Record()],
    )  # fmt: skip
    trainer.fit(probes, loader)
    first = [b for e, b in seen if e == 0]
    second = [b for e, b in seen if e == 1]
    assert len(first) == len(second) > 0 and loader.dataset.images.epoch == 1
    assert not all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_cached_features_equal_the_encoder_output(
    folders: tuple[Path, Path], tmp_path: Path, mode: str
) -> None:
    data = ClassificationData(
        str(folders[0]), str(folders[1]), resize=36, crop=32, batch_size=5, num_workers=0
    )
    train, _ = data.splits()
    encoder = build_encoder(RANDOM)
    shapes = tap_shapes(encoder, ["conv2", "conv4"], 32)
    sizes = pool_sizes(shapes, 300)
    channels = {t: s[0] for t, s in shapes.items()}
    loader = data.loader(train, train=False, shuffle=False)
    store = extract_features(encoder, sizes, channels, loader, len(train.files), mode, tmp_path / "cache")
    assert len(store) == len(train.files) and store.labels.tolist() == train.labels
    direct = torch.cat([pool_features(encoder(b["rgb"], ["conv2", "conv4"]), sizes)["conv4"] for b in loader])
    cached = torch.as_tensor(np.asarray(store.features["conv4"])).float()
    torch.testing.assert_close(cached, direct, atol=2e-3 * direct.abs().max().item(), rtol=1e-3)
    batch = store.__getitems__([3, 0, 5])
    assert batch["label"].tolist() == [train.labels[i] for i in (3, 0, 5)]
    if mode == "disk":
        assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
            "train-conv2.npy",
            "train-conv4.npy",
        ]
    assert resolve_mode("auto", 10, {"a": 100}) == "memory"
    assert resolve_mode("auto", 10**9, {"a": 10**6}) == "disk"


def test_folders_splits_and_shards(folders: tuple[Path, Path], tmp_path: Path) -> None:
    train = labelled_folder(folders[0])
    assert train.classes == ["bright", "dark", "mid"] and len(train.files) == 24
    assert sorted(set(train.labels)) == [0, 1, 2]
    a, b = split_labelled(train, 0.25, seed=1)
    again, _ = split_labelled(train, 0.25, seed=1)
    assert set(a.files).isdisjoint(b.files) and len(b.files) == 6 and a.files == again.files
    half = subsample(train, 12, seed=0)
    assert len(half.files) == 12 and sorted(half.labels) == [0] * 4 + [1] * 4 + [2] * 4
    parts = [shard(train, r, 3) for r in range(3)]
    assert sorted(f for p in parts for f in p.files) == sorted(train.files)
    (tmp_path / "odd" / "dark").mkdir(parents=True)
    save(tmp_path / "odd" / "dark" / "x.png", picture(8, 8))
    with pytest.raises(ValueError, match="class folders differ"):
        labelled_folder(tmp_path / "odd", train.classes)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        labelled_folder(tmp_path / "nowhere")


def test_knn_matches_brute_force() -> None:
    generator = torch.Generator().manual_seed(0)
    bank, labels = torch.randn(50, 16, generator=generator), torch.randint(0, 4, (50,), generator=generator)
    queries = torch.randn(7, 16, generator=generator)
    scores = knn_scores(bank, labels, queries, 4, k=5, temperature=0.1, chunk=3)
    for q in range(7):
        sims = [
            float(torch.dot(queries[q], bank[i]) / (queries[q].norm() * bank[i].norm())) for i in range(50)
        ]
        best = sorted(range(50), key=lambda i: -sims[i])[:5]
        expected = [sum(np.exp(sims[i] / 0.1) for i in best if labels[i] == c) for c in range(4)]
        np.testing.assert_allclose(scores[q].numpy(), expected, rtol=1e-4)
    assert topk_accuracy(torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]]), torch.tensor([1, 2]), (1, 2)) == {
        "top1": 0.5,
        "top2": 0.5,
    }


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def cli_config(folders: tuple[Path, Path], out: Path, **extra: object) -> dict:
    return {
        "dataset": "shades",
        "out_dir": str(out),
        "encoder": {"init": "random", "arch": "eccv16", "arch_options": OPTIONS},
        "baselines": [],
        "data": {"train": str(folders[0]), "val": str(folders[1]), "resize": 36, "crop": 32, "batch_size": 8,
                 "num_workers": 0},
        "trainer": {"max_epochs": 2, "accelerator": "cpu", "log_every_n_steps": 1,
                    "enable_progress_bar": False},
        **extra,
    }  # fmt: skip


def test_linear_cli_writes_report_and_wandb_offline_run(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    config = cli_config(folders, out, probe={"pool_dims": 400, "cache": "memory", "optim": {"lr": 0.05}})
    config["encoder"] = {"init": "random", "arch": "eccv16", "arch_options": OPTIONS, "seed": 1}
    config["baselines"] = ["random"]
    assert main(["linear", "--config", str(write_config(tmp_path / "c.yaml", config))]) == 0
    results = read_results(out / "linear_shades.json")
    assert [r.encoder for r in results] == ["random init (eccv16)"] * 2
    assert all(set(r.metrics) == {f"conv{i}" for i in range(1, 8)} for r in results)
    assert all(0.0 <= m["top1"] <= m["top5"] <= 1.0 for r in results for m in r.metrics.values())
    assert results[0].config["pool"]["conv1"] >= 1 and results[0].config["cache"] == "memory"
    assert "| linear | shades |" in (out / "linear_shades.md").read_text()
    assert (out / "linear_shades.png").stat().st_size > 1000
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert runs, "the report's wandb run"
    report = finished_run_records(next(runs[-1].glob("run-*.wandb")))
    assert "history" in report and "exit" in report
    probe_runs = list((out / "encoder" / "wandb").glob("offline-run-*"))
    probe = finished_run_records(next(probe_runs[0].glob("run-*.wandb")))
    logged = {item.key or "/".join(item.nested_key) for r in probe["history"] for item in r.history.item}
    assert {"val/conv1/top1", "val/conv7/top5", "train/loss/conv3"} <= logged
    baseline_runs = list((out / "random" / "wandb").glob("offline-run-*"))
    baseline = finished_run_records(next(baseline_runs[0].glob("run-*.wandb")))
    names = [r["run"][0].run.display_name for r in (probe, baseline, report)]
    assert names == ["linear-random init (eccv16)"] * 2 + ["linear-shades-report"]
    groups = {r["run"][0].run.run_group for r in (probe, baseline, report)}
    assert len(groups) == 1 and groups.pop().startswith("linear-shades-")  # one group per command
    (artifact,) = [
        r.artifact for r in report["artifact"] if r.artifact.type == "results"
    ]  # besides the table's
    assert artifact.name.startswith("linear-shades-results-")  # every file of the report, as one artifact
    digests = {entry.path: entry.digest for entry in artifact.manifest.contents}
    files = ["linear_shades.json", "linear_shades.md", "linear_shades.png", "config.yaml"]
    assert digests == {name: md5_base64(out / name) for name in files}
    saved = yaml.safe_load((out / "config.yaml").read_text())  # the resolved config, replayable
    assert saved["trainer"]["max_epochs"] == 2 and saved["seed_everything"] == 0
    assert saved["probe"]["optim"]["lr"] == 0.05 and saved["encoder"]["seed"] == 1


def test_cli_is_strict_and_report_gathers(folders: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    config = cli_config(folders, tmp_path / "o", probe={"pool_dims": 400, "bogus": 1})
    with pytest.raises(SystemExit):
        main(["linear", "--config", str(write_config(tmp_path / "bad.yaml", config))])
    assert "bogus" in capsys.readouterr().err
    config = cli_config(folders, tmp_path / "k", knn={"pool_dims": 300, "k": 3})
    assert (
        main(["knn", "--config", str(write_config(tmp_path / "knn.yaml", config)), "--baselines", "[random]"])
        == 0
    )
    knn = read_results(tmp_path / "k" / "knn_shades.json")
    assert len(knn) == 2 and all(0 <= m["top1"] <= 1 for r in knn for m in r.metrics.values())
    assert main(["report", str(tmp_path / "k" / "knn_shades.json"), "--out", str(tmp_path / "all.md")]) == 0
    assert "## knn on shades" in (tmp_path / "all.md").read_text()
    assert main(["knn", "--config", str(tmp_path / "knn.yaml"), "--baselines", "[imagenet]"]) == 1
    assert "selfsup-transfer: error: ValueError: unknown baselines ['imagenet']" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown baselines"):  # with the traceback on request
        main(["knn", "--config", str(tmp_path / "knn.yaml"), "--baselines", "[imagenet]", "--debug"])


def test_finetune_and_supervised_baseline(folders: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "ft"
    config = cli_config(
        folders,
        out,
        finetune={"freeze_at": "conv3", "pool_dims": 200, "optim": {"lr": 0.05}},
        baselines=["supervised"],
    )
    config["trainer"]["max_epochs"] = 1
    assert main(["finetune", "--config", str(write_config(tmp_path / "ft.yaml", config))]) == 0
    results = read_results(out / "finetune_shades.json")
    assert [r.task for r in results] == ["finetune", "supervised"]
    assert set(results[0].metrics) == {"conv7"} and results[1].encoder == "supervised (eccv16)"
    weights = torch.load(out / "supervised" / "supervised.pt", weights_only=True)
    assert weights["arch"] == "eccv16" and weights["arch_options"] == OPTIONS
    assert (
        json.loads((out / "finetune_shades.json").read_text())["results"][0]["config"]["finetune"][
            "freeze_at"
        ]
        == "conv3"
    )


def test_supervised_budget_in_steps_on_every_train_image(folders: tuple[Path, Path], tmp_path: Path) -> None:
    from transfer.classification.run import FinetuneConfig, run_finetune
    from transfer.trainer import TrainerSpec

    data = ClassificationData(
        str(folders[0]), str(folders[1]), resize=36, crop=32, batch_size=8, num_workers=0, max_train_images=6
    )
    budget = FinetuneConfig(
        max_steps=5, batch_size=4, train_images="all", pool_dims=200, gradient_clip_val=0.5
    )
    trainer = TrainerSpec(
        {"max_epochs": 1, "accelerator": "cpu", "enable_progress_bar": False, "logger": False}
    )
    _, module = run_finetune(RANDOM, data, budget, trainer, tmp_path, "shades")
    assert module.trainer.global_step == 5  # by steps, past the one configured epoch of 6 batches
    assert module.trainer.num_training_batches == 6  # all 3 x 8 images in batches of 4, not the 6 probed
    assert module.trainer.gradient_clip_val == 0.5  # this training's clipping, not the trainer section's
    same = FinetuneConfig(max_epochs=1, pool_dims=200)
    _, module = run_finetune(RANDOM, data, same, trainer, tmp_path / "b", "shades")
    assert module.trainer.num_training_batches == 1 and module.trainer.global_step == 1
    assert module.trainer.gradient_clip_val is None
    with pytest.raises(ValueError, match=r"finetune\.gradient_clip_val"):
        FinetuneConfig(gradient_clip_val=0.0)
    with pytest.raises(ValueError, match=r"finetune\.max_steps"):
        FinetuneConfig(max_steps=0)
    with pytest.raises(ValueError, match="train_images"):
        FinetuneConfig(train_images="some")  # type: ignore[arg-type]
