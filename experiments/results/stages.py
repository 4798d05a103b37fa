"""The stages behind docs/results.md: one command each, done when its output exists.

Stages run in order; later ones read what earlier ones wrote under the results root:

* ``priors``: the ab prior of each data set and one figure of all of them;
* ``pretrain/<pretext>``: ``cifar10_cpu.yaml`` once per pretext (rebalanced colorization, lam = 1,
  L2 regression), resumed from its last checkpoint when interrupted;
* ``cbsd68``: colorization quality of the three networks on CBSD68, with the gray baseline;
* ``linear/<pretext>``: linear probes per layer on CIFAR-10 (random init and supervised from
  scratch beside the first);
* ``detection`` and ``segmentation``: COCO128 transfer of the rebalanced network and random init,
  on the split stored in ``experiments/results/splits/``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from experiments.paths import REPO

PRETRAIN_RECIPE = REPO / "experiments" / "pretrain" / "cifar10_cpu.yaml"
SPLITS = REPO / "experiments" / "results" / "splits"
CBSD68_PROCESS_SIZE = 32
"""CBSD68 photos are colorized with their shorter side at the networks' training size (CIFAR-10 crops)."""


@dataclass(frozen=True)
class Pretext:
    """One pretext task of the comparison: its label and its overrides of the pretraining recipe."""

    name: str
    label: str
    overrides: tuple[str, ...]


PRETEXTS = (
    Pretext("rebalanced", "colorization, rebalanced (lam = 0.5)", ()),
    Pretext("lam1", "colorization, no rebalancing (lam = 1)", ("--model.lam", "1.0")),
    Pretext("l2", "L2 regression on ab", ("--model.loss", "regression", "--model.lam", "1.0")),
)


@dataclass(frozen=True)
class Stage:
    """A command and the file that exists once it has succeeded."""

    name: str
    command: tuple[str, ...]
    output: Path
    data: tuple[str, ...] = ()
    """Data sets (under ``data/``) the command reads; unpacked from the shared archives first."""

    def done(self) -> bool:
        return self.output.is_file()


def recipe_steps(recipe: Path = PRETRAIN_RECIPE) -> int:
    """``trainer.max_steps`` of a pretraining recipe."""
    return int(yaml.safe_load(recipe.read_text())["trainer"]["max_steps"])


def checkpoint_step(path: Path) -> int:
    """The global step stored in a Lightning checkpoint."""
    from selfsup_color.checkpoints import read_checkpoint

    return int(read_checkpoint(path).get("global_step", 0))


@dataclass(frozen=True)
class PretrainStage(Stage):
    """Pretraining: done when ``last.ckpt`` holds the recipe's last step; otherwise resumes from it."""

    steps: int = 0

    def done(self) -> bool:
        return self.output.is_file() and checkpoint_step(self.output) >= self.steps


def pretrain_checkpoint(root: Path, pretext: str) -> Path:
    return root / "pretrain" / pretext / "checkpoints" / "last.ckpt"


def pretrain_stage(root: Path, pretext: Pretext) -> PretrainStage:
    last = pretrain_checkpoint(root, pretext.name)
    resume = ("--ckpt_path", str(last)) if last.is_file() else ()
    command = (
        "selfsup-color",
        "fit",
        "--config",
        str(PRETRAIN_RECIPE),
        "--trainer.default_root_dir",
        str(root / "pretrain" / pretext.name),
        "--trainer.enable_progress_bar",
        "false",
        *pretext.overrides,
        *resume,
    )
    return PretrainStage(f"pretrain/{pretext.name}", command, last, ("cifar10",), recipe_steps())


def stages(root: Path) -> list[Stage]:
    """Every stage, in the order they run, writing under ``root``."""
    python = sys.executable
    recipes = REPO / "experiments" / "transfer"
    rebalanced = str(pretrain_checkpoint(root, "rebalanced"))
    out: list[Stage] = [
        Stage(
            "priors",
            (python, "-m", "experiments.results.priors", "--out", str(root / "priors")),
            root / "priors" / "priors.json",
            ("cifar10", "hymenoptera", "coco128", "cbsd68"),
        )
    ]
    out += [pretrain_stage(root, p) for p in PRETEXTS]
    checkpoints = [f"--ckpt={p.name}={pretrain_checkpoint(root, p.name)}" for p in PRETEXTS]
    evaluate = (
        "selfsup-color",
        "evaluate",
        str(REPO / "data" / "cbsd68"),
        *checkpoints,
        "--out",
        str(root / "cbsd68"),
        "--process-size",
        str(CBSD68_PROCESS_SIZE),
        "--grid",
        "6",
    )
    out.append(Stage("cbsd68", evaluate, root / "cbsd68" / "scores.json", ("cbsd68",)))
    for i, pretext in enumerate(PRETEXTS):
        folder = root / "linear" / pretext.name
        linear = (
            "selfsup-transfer",
            "linear",
            "--config",
            str(recipes / "linear_cifar10_cpu.yaml"),
            "--encoder.checkpoint",
            str(pretrain_checkpoint(root, pretext.name)),
            "--out_dir",
            str(folder),
            "--baselines=" + ("[random,supervised]" if i == 0 else "[]"),
        )
        out.append(Stage(f"linear/{pretext.name}", linear, folder / "linear_cifar10.json", ("cifar10",)))
    for task in ("detection", "segmentation"):
        command = (
            "selfsup-transfer",
            task,
            "--config",
            str(recipes / f"{task}_coco128_cpu.yaml"),
            "--encoder.checkpoint",
            rebalanced,
            "--out_dir",
            str(root / task),
            f"--{task}.data.split_file",
            str(SPLITS / f"coco128_{task}.json"),
        )
        out.append(Stage(task, command, root / task / f"{task}_coco128.json", ("coco128",)))
    return out
