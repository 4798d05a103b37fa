"""``selfsup-transfer`` speaks the one dialect: verbs in ``--help``, strict configs that round-trip,
one section layout for every task, the whole Trainer, old flags renamed with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lightning.pytorch.loggers import CSVLogger

from transfer.cli import TASKS, build_parser, main
from transfer.trainer import TrainerSpec, run_logger

ENCODER = ["--encoder.init", "random", "--encoder.arch", "eccv16", "--dataset", "d", "--out_dir", "o"]
DATA = {
    "linear": ["--data.train", "t"],
    "knn": ["--data.train", "t"],
    "finetune": ["--data.train", "t"],
    "detection": ["--data.root", "r"],
    "segmentation": ["--data.root", "r"],
    "multilabel": ["--data.root", "r"],
}


def test_help_lists_every_verb(capsys) -> None:
    assert main(["--help"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert listed == {*TASKS, "report", "export"}
    assert main(["predict"]) == 2


@pytest.mark.parametrize("task", TASKS)
def test_every_task_has_one_layout_and_round_trips(task: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([task, *ENCODER, *DATA[task], "--trainer.gradient_clip_val", "2.5", "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    config = yaml.safe_load(printed)
    own = {"linear": "probe", "knn": "knn", "finetune": "finetune"}.get(task, task)
    assert {"encoder", "data", own, "trainer", "seed_everything", "baselines", "dataset", "out_dir"} <= set(
        config
    )
    assert "data" not in config[own] and "logger" not in config  # data at the top, the logger in trainer
    assert config["trainer"]["gradient_clip_val"] == 2.5  # any Trainer argument, no `extra`
    assert config["trainer"]["logger"]["init_args"]["project"] == "selfsup-color-transfer"
    (tmp_path / "c.yaml").write_text(printed)
    with pytest.raises(SystemExit):
        main([task, "--config", str(tmp_path / "c.yaml"), "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out) == config
    config["trainer"]["max_epoch"] = 3  # a typo of a Trainer argument fails at parsing, named
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as exit_info:
        main([task, "--config", str(tmp_path / "bad.yaml")])
    assert exit_info.value.code not in (0, None) and "max_epoch" in capsys.readouterr().err


def test_old_flags_are_renamed_with_a_warning() -> None:
    from selfsup_color.command import parse

    parser = build_parser("knn")
    with pytest.warns(FutureWarning, match="--encoder.checkpoint is deprecated; use --encoder.ckpt_path"):
        config = parse(
            parser,
            ["--encoder.checkpoint", "x.ckpt", "--trainer.seed", "4", "--device", "cpu", "--dataset", "d",
             "--out_dir", "o", "--data.train", "t"],
            __import__("transfer.cli", fromlist=["RENAMED"]).RENAMED,
        )  # fmt: skip
    assert config.encoder.ckpt_path == "x.ckpt" and config.seed_everything == 4
    assert config.trainer.accelerator == "cpu"


def test_trainer_spec_builds_fresh_trainers_and_rejects_unknown_keys(tmp_path: Path) -> None:
    csv = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"name": "mine"}}
    spec = TrainerSpec({"max_epochs": 2, "accelerator": "cpu", "logger": csv, "gradient_clip_val": 1.5}, 3)
    first, second = spec.build(tmp_path / "a", "enc"), spec.build(tmp_path / "b", "random", max_epochs=1)
    assert first is not second and first.max_epochs == 2 and second.max_epochs == 1
    assert first.gradient_clip_val == 1.5 and first.checkpoint_callback is None  # transfer's default
    assert isinstance(first.logger, CSVLogger) and first.logger.name == "mine-enc"
    assert Path(first.logger.save_dir) == tmp_path / "a" and Path(first.default_root_dir) == tmp_path / "a"
    with pytest.raises(Exception, match="max_epoch"):
        TrainerSpec({"max_epoch": 1}).build(tmp_path / "c", "x")
    assert run_logger(False, tmp_path, "x", None) is False
    assert spec.settings()["seed_everything"] == 3 and TrainerSpec({"accelerator": "cpu"}).device() == "cpu"


def test_report_and_export_take_config_and_print_it(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["report", "a.json", "b.json", "--out", "r.md", "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out) == {"results": ["a.json", "b.json"], "out": "r.md"}
    with pytest.raises(SystemExit):
        main(["export", "--ckpt_path", "x.ckpt", "--out", "e.pt", "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out) == {
        "ckpt_path": "x.ckpt",
        "out": "e.pt",
        "postprocess": "none",
    }
