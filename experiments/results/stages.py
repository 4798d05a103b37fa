"""The stages behind docs/results.md: one command each, done when its output exists.

The comparison has five arms on Imagenette at 64 px (:data:`ARMS`): three pretexts pretrained with
``experiments/pretrain/eccv16-w025_imagenette64_cpu1x64_1500.yaml`` (each with its own overrides),
random init, and supervised training from scratch with the pretraining's budget. Pretexts and random
init run with every seed of :data:`SEEDS`, the supervised arm with :data:`SUPERVISED_SEEDS`. Stages run
in this order, later ones reading what earlier ones wrote under the results root:

* ``priors``: the ab prior of each data set and one figure of all of them;
* ``pretrain/<arm>/seed<k>``: resumed from its last checkpoint when interrupted;
* ``linear/<arm>/seed<k>``: linear probes per layer on Imagenette. ``linear/random/seed0`` also trains
  the supervised arm (the probes' ``supervised`` baseline) and probes it, so that its weights exist
  for the stages after;
* ``knn/...`` and ``hymenoptera/...``: the kNN probe on Imagenette, linear probes on hymenoptera;
* ``cbsd68`` and ``cbsd68-imagenet-prior``: colorization quality of every pretext network, the
  rebalanced AuC under CBSD68's own prior and under the ImageNet table;
* ``detection/...`` and ``segmentation/...``: COCO128 transfer on the split stored in
  ``experiments/results/splits/``, seed-major (every arm's seed 0 first), so that a partial run
  still compares arms.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from experiments.paths import REPO, SHARED

PRETRAIN_RECIPE = REPO / "experiments" / "pretrain" / "eccv16-w025_imagenette64_cpu1x64_1500.yaml"
ALEXNET_RECIPE = REPO / "experiments" / "pretrain" / "alexnet-w025_imagenette96_cpu1x32_600.yaml"
TRANSFER = REPO / "experiments" / "transfer"
LINEAR_RECIPE = TRANSFER / "linear_imagenette64_cpu.yaml"
KNN_RECIPE = TRANSFER / "knn_imagenette64_cpu.yaml"
HYMENOPTERA_RECIPE = TRANSFER / "linear_hymenoptera_cpu.yaml"
ALEXNET_LINEAR_RECIPE = TRANSFER / "linear_imagenette96_alexnet_cpu.yaml"
MULTILABEL_RECIPE = TRANSFER / "multilabel_coco128_cpu.yaml"
FROM_FC7 = ("--multilabel.freeze_at", "fc7", "--multilabel.tap", "fc7")
"""The protocol's ``--train-from drop7``: the encoder frozen through fc7, the classifier trained on it."""
SPLITS = REPO / "experiments" / "results" / "splits"
IMAGENET_PRIOR = SHARED / "reference" / "imagenet_prior_313.txt"
CBSD68_PROCESS_SIZE = 64
"""CBSD68 photos are colorized with their shorter side at the networks' training crop (64 px)."""
SEEDS = (0, 1, 2)
SUPERVISED_SEEDS = (0,)


@dataclass(frozen=True)
class Arm:
    """One arm of the comparison: its key in summary.json, its label, and (pretexts) its overrides
    of the pretraining recipe."""

    name: str
    label: str
    overrides: tuple[str, ...] | None = None
    """``selfsup-color fit`` overrides; None for the arms that are not pretrained (baselines)."""
    recipe: Path = PRETRAIN_RECIPE
    """The pretraining recipe (random arms: the architecture they rebuild)."""
    transfer: tuple[str, ...] = ()
    """Encoder options of every transfer stage of the arm (e.g. the paper's post-processing)."""

    @property
    def pretext(self) -> bool:
        return self.overrides is not None

    @property
    def seeds(self) -> tuple[int, ...]:
        return SUPERVISED_SEEDS if self.name == "supervised" else SEEDS


PRETEXTS = (
    Arm("rebalanced", "colorization, rebalanced (lam = 0.5)", ()),
    Arm("lam1", "colorization, no rebalancing (lam = 1)", ("--model.lam", "1.0", "--model.lr", "1e-3")),
    Arm(
        "l2",
        "L2 regression on ab",
        ("--model.loss", "regression", "--model.lam", "1.0", "--model.lr", "1e-3"),
    ),
)
RANDOM = Arm("random", "random init")
SUPERVISED = Arm("supervised", "supervised from scratch")
ARMS = (*PRETEXTS, RANDOM, SUPERVISED)
RESCALED = ("--encoder.postprocess", "rescale")
ALEXNET_ARMS = (
    Arm("alexnet", "colorization AlexNet, rescaled", (), ALEXNET_RECIPE, RESCALED),
    Arm("alexnet-random", "random AlexNet, rescaled", None, ALEXNET_RECIPE, RESCALED),
)
"""The CPU miniature of the paper's pipeline (issue 17): the colorization AlexNet and its rescaled random
baseline, post-processed as the authors' ``postprocess_model.sh`` before every transfer."""


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


def read_recipe(recipe: Path = PRETRAIN_RECIPE) -> dict:
    return yaml.safe_load(recipe.read_text())


def recipe_steps(recipe: Path = PRETRAIN_RECIPE) -> int:
    """``trainer.max_steps`` of a pretraining recipe."""
    return int(read_recipe(recipe)["trainer"]["max_steps"])


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


def run_dir(root: Path, stage: str, arm: str, seed: int) -> Path:
    return root / stage / arm / f"seed{seed}"


def pretrain_checkpoint(root: Path, arm: str, seed: int) -> Path:
    return run_dir(root, "pretrain", arm, seed) / "checkpoints" / "last.ckpt"


def supervised_weights(root: Path) -> Path:
    """The supervised arm's network, trained by the ``linear/random/seed0`` stage."""
    return run_dir(root, "linear", RANDOM.name, 0) / "supervised" / "supervised.pt"


def pretrain_stage(root: Path, arm: Arm, seed: int) -> PretrainStage:
    last = pretrain_checkpoint(root, arm.name, seed)
    resume = ("--ckpt_path", str(last)) if last.is_file() else ()
    command = (
        "selfsup-color",
        "fit",
        "--config",
        str(arm.recipe),
        "--seed_everything",
        str(seed),
        "--data.seed",
        str(seed),
        "--trainer.default_root_dir",
        str(run_dir(root, "pretrain", arm.name, seed)),
        "--trainer.enable_progress_bar",
        "false",
        *(arm.overrides or ()),
        *resume,
    )
    return PretrainStage(
        f"pretrain/{arm.name}/seed{seed}", command, last, ("imagenette",), recipe_steps(arm.recipe)
    )


def encoder_args(root: Path, arm: Arm, seed: int) -> tuple[str, ...]:
    """``selfsup-transfer`` arguments naming the encoder of ``arm`` at ``seed`` (and seeding the run)."""
    seeded = ("--seed_everything", str(seed))
    if arm.pretext:
        return ("--encoder.ckpt_path", str(pretrain_checkpoint(root, arm.name, seed)), *seeded, *arm.transfer)
    if arm is SUPERVISED:
        return ("--encoder.ckpt_path", str(supervised_weights(root)), *seeded)
    model = read_recipe(arm.recipe)["model"]
    options = ", ".join(f"{k}: {v}" for k, v in model.get("arch_options", {}).items())
    return (
        "--encoder.arch",
        model["arch"],
        f"--encoder.arch_options={{{options}}}",
        "--encoder.init",
        "random",
        "--encoder.seed",
        str(seed),
        *seeded,
        *arm.transfer,
    )


def transfer_stage(
    root: Path,
    kind: str,
    task: str,
    recipe: Path,
    arm: Arm,
    seed: int,
    output: str,
    data: tuple[str, ...],
    extra: tuple[str, ...] = (),
) -> Stage:
    """``selfsup-transfer task`` of one encoder (no baselines: each arm is its own stage)."""
    folder = run_dir(root, kind, arm.name, seed)
    baselines = "[supervised]" if (kind, arm.name, seed) == ("linear", RANDOM.name, 0) else "[]"
    command = (
        "selfsup-transfer",
        task,
        "--config",
        str(recipe),
        *encoder_args(root, arm, seed),
        "--out_dir",
        str(folder),
        f"--baselines={baselines}",
        *extra,
    )
    if kind in ("detection", "segmentation"):
        command += ("--data.split_file", str(SPLITS / f"coco128_{kind}.json"))
    return Stage(f"{kind}/{arm.name}/seed{seed}", command, folder / output, data)


def cbsd68_stage(root: Path, name: str, prior: Path | None) -> Stage:
    """Colorization quality of every pretext network on CBSD68 (with the gray baseline)."""
    checkpoints = [
        arg
        for arm in PRETEXTS
        for seed in arm.seeds
        for arg in (f"--ckpt_path.{arm.name}/seed{seed}", str(pretrain_checkpoint(root, arm.name, seed)))
    ]
    command = (
        "selfsup-color",
        "evaluate",
        str(REPO / "data" / "cbsd68"),
        *checkpoints,
        "--out",
        str(root / name),
        "--process_size",
        str(CBSD68_PROCESS_SIZE),
        "--grid",
        "6" if prior is None else "0",
        *(("--prior", str(prior)) if prior else ()),
    )
    return Stage(name, command, root / name / "scores.json", ("cbsd68",))


def stages(root: Path) -> list[Stage]:
    """Every stage, in the order they run, writing under ``root``."""
    python = sys.executable
    out: list[Stage] = [
        Stage(
            "priors",
            (python, "-m", "experiments.results.priors", "--out", str(root / "priors")),
            root / "priors" / "priors.json",
            ("imagenette", "hymenoptera", "coco128", "cbsd68"),
        )
    ]
    out += [pretrain_stage(root, arm, seed) for arm in PRETEXTS for seed in arm.seeds]
    # random seed 0 before the others: its stage trains the supervised arm that later stages read
    probed = [(RANDOM, 0)]
    probed += [(a, s) for a in ARMS if a is not SUPERVISED for s in a.seeds if (a, s) != (RANDOM, 0)]
    imagenette = ("imagenette",)
    out += [
        transfer_stage(root, "linear", "linear", LINEAR_RECIPE, a, s, "linear_imagenette64.json", imagenette)
        for a, s in probed
    ]
    everyone = [(a, s) for a in ARMS for s in a.seeds]
    hymenoptera = ("hymenoptera",)
    out += [
        transfer_stage(root, "knn", "knn", KNN_RECIPE, a, s, "knn_imagenette64.json", imagenette)
        for a, s in everyone
    ]
    out.append(cbsd68_stage(root, "cbsd68", None))
    if IMAGENET_PRIOR.is_file():
        out.append(cbsd68_stage(root, "cbsd68-imagenet-prior", IMAGENET_PRIOR))
    out += [
        transfer_stage(
            root, "hymenoptera", "linear", HYMENOPTERA_RECIPE, a, s, "linear_hymenoptera.json", hymenoptera
        )
        for a, s in everyone
    ]
    for seed in SEEDS:
        for arm in (a for a in ARMS if a is not SUPERVISED):
            for kind in ("detection", "segmentation"):
                recipe = TRANSFER / f"{kind}_coco128_cpu.yaml"
                output = f"{kind}_coco128.json"
                out.append(transfer_stage(root, kind, kind, recipe, arm, seed, output, ("coco128",)))
    out += alexnet_stages(root)
    return out


def alexnet_stages(root: Path) -> list[Stage]:
    """The CPU miniature of the paper's pipeline, last: pretraining, then linear probes on Imagenette
    (96 px) and multi-label classification from fc7 on COCO128 (detection's split), both arms rescaled."""
    pretrained = ALEXNET_ARMS[0]
    out: list[Stage] = [pretrain_stage(root, pretrained, seed) for seed in SEEDS]
    both = [(arm, seed) for seed in SEEDS for arm in ALEXNET_ARMS]
    out += [
        transfer_stage(
            root, "alexnet-linear", "linear", ALEXNET_LINEAR_RECIPE, a, s, "linear_imagenette96.json",
            ("imagenette",),
        )
        for a, s in both
    ]  # fmt: skip
    split = ("--data.split_file", str(SPLITS / "coco128_detection.json"))
    out += [
        transfer_stage(
            root, "alexnet-multilabel", "multilabel", MULTILABEL_RECIPE, a, s, "multilabel_coco128.json",
            ("coco128",), (*FROM_FC7, *split),
        )
        for a, s in both
    ]  # fmt: skip
    return out
