"""Every recipe and sweep parses strictly through the real CLI (no training)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from selfsup_color.cli import main

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "experiments" / "pretrain").glob("*.yaml"))


def _printed_config(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code in (0, None), capsys.readouterr().err[-2000:]
    return yaml.safe_load(capsys.readouterr().out)


def test_the_recipes_are_there() -> None:
    names = {p.name for p in RECIPES}
    assert {
        "cifar10_cpu.yaml",
        "eccv16_imagenet_8gpux5_450k.yaml",
        "resnet50-os8_imagenet_8gpux32_140k.yaml",
    } <= names
    assert any("builtin" in n for n in names)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_parses_strictly(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _printed_config(["fit", "--config", str(recipe)], capsys)
    written = yaml.safe_load(recipe.read_text())
    for section in ("trainer", "model", "data"):
        for key, value in written[section].items():
            assert config[section][key] == value, f"{recipe.name}: {section}.{key}"


def test_sweep_command_is_accepted_by_the_cli(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    """Build one run's command the way `wandb agent` does and check the CLI takes every flag."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    monkeypatch.chdir(REPO)
    sweep = yaml.safe_load(
        (REPO / "experiments" / "sweeps" / "quickstart_lr_lam_temperature.yaml").read_text()
    )
    chosen = {}
    for name, spec in sweep["parameters"].items():
        chosen[name] = spec["values"][-1] if "values" in spec else spec["max"]
    flags = create_sweep_command_args({"args": {k: {"value": v} for k, v in chosen.items()}})["args"]
    command = [part for item in sweep["command"] for part in (flags if item == "${args}" else [item])]
    assert command[0] == sweep["program"] == "selfsup-color"
    config = _printed_config(command[1:], capsys)
    for name, value in chosen.items():
        section, key = name.split(".")
        assert config[section][key] == pytest.approx(value)
    assert sweep["metric"]["name"] == "val/rebalanced_auc"


TRANSFER_RECIPES = sorted((REPO / "experiments" / "transfer").glob("*.yaml"))


@pytest.mark.parametrize("recipe", TRANSFER_RECIPES, ids=lambda p: p.name)
def test_transfer_recipe_parses_strictly(recipe: Path) -> None:
    """Each transfer recipe (its verb is its name's first word) parses and builds its settings."""
    from transfer.cli import TASKS, build_parser

    task = recipe.name.split("_")[0]
    assert task in TASKS, recipe.name
    parser = build_parser(task)
    config = parser.parse_args(["--config", str(recipe), "--encoder.ckpt_path", "runs/x/last.ckpt"])
    written = yaml.safe_load(recipe.read_text())
    sections = config.clone()
    sections.pop("trainer")
    built = parser.instantiate_classes(sections)  # runs each section's own checks
    for section in set(written).intersection(("probe", "data")):
        for key, value in written[section].items():
            if key != "optim":
                assert getattr(built[section], key) == value, f"{recipe.name}: {section}.{key}"
