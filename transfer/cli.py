"""The ``selfsup-transfer`` command: evaluate an encoder and its baselines, write one report.

Verbs:

- ``linear``, ``knn``, ``finetune``: classification on ImageFolder splits;
- ``detection``, ``segmentation``: Faster R-CNN and FCN heads on COCO-style or VOC data;
- ``multilabel``: multi-label classification fine-tuning (PASCAL VOC07 style, mAP) on VOC or COCO data;
- ``report``: one markdown table of several results;
- ``export``: a pretraining checkpoint's network as standalone weights.

Every verb speaks the dialect of ``selfsup-color`` (:mod:`selfsup_color.command`): ``--config`` (strict
YAML), dotted overrides (``--encoder.ckpt_path runs/x/last.ckpt``), ``--print_config``. Evaluations take
the whole ``Trainer`` (``--trainer.*``, logger included) and ``--seed_everything`` as pretraining does, and
one layout of sections: ``encoder``, ``data``, the task's own section, ``trainer``. They run the encoder then
each of ``baselines`` (``random``: the same architecture randomly initialised; ``supervised``: it trained
from scratch on the labels, classification only) on the same data, writing
``<out_dir>/<task>_<dataset>.{json,md,png}`` and ``<out_dir>/config.yaml``, and log every run to one wandb
group (offline without an API key).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser

from selfsup_color.command import (
    CONFIG_NAME,
    command_parser,
    command_usage,
    first_paragraph,
    parse,
    run_command,
    run_function,
    save_config,
    split_verb,
)
from selfsup_color.distributed import is_global_zero

from .encoder import EncoderConfig
from .postprocess import Postprocess
from .report import Result, gather, write_report
from .trainer import TrainerSpec, add_trainer_arguments, run_logger

BASELINES = ("random", "supervised")
CLASSIFICATION = ("linear", "knn", "finetune")
TASKS = (*CLASSIFICATION, "detection", "segmentation", "multilabel")
RENAMED = {
    "--encoder.checkpoint": "--encoder.ckpt_path",
    "--trainer.seed": "--seed_everything",
    "--device": "--trainer.accelerator",
}
"""Flags of the previous release, still accepted with a warning."""


def task_sections(task: str) -> dict[str, type]:
    """The config sections of ``task`` besides ``encoder`` and ``trainer``: ``data`` first, then its own."""
    if task in CLASSIFICATION:
        from .classification.data import ClassificationData
        from .classification.run import FinetuneConfig, KNNConfig, ProbeConfig

        own: dict[str, type] = {"linear": {"probe": ProbeConfig}, "knn": {"knn": KNNConfig}, "finetune": {}}[
            task
        ]
        return {"data": ClassificationData, **own, "finetune": FinetuneConfig}  # finetune: the supervised arm
    if task == "detection":
        from .detection.run import DetectionConfig, DetectionDataConfig

        return {"data": DetectionDataConfig, "detection": DetectionConfig}
    if task == "multilabel":
        from .multilabel.data import MultilabelDataConfig
        from .multilabel.run import MultilabelConfig

        return {"data": MultilabelDataConfig, "multilabel": MultilabelConfig}
    from .segmentation.run import SegmentationConfig, SegmentationDataConfig

    return {"data": SegmentationDataConfig, "segmentation": SegmentationConfig}


def build_parser(task: str) -> LightningArgumentParser:
    """The strict parser of one evaluation verb."""
    parser = command_parser(
        f"selfsup-transfer {task}", f"{task} evaluation of an encoder", LightningArgumentParser
    )
    parser.add_class_arguments(EncoderConfig, "encoder")
    parser.add_argument("--baselines", type=list[str], default=["random"], help=f"any of {BASELINES}")
    parser.add_argument("--dataset", type=str, required=True, help="the data's name, for tables")
    parser.add_argument("--out_dir", type=Path, required=True, help="where results, config and logs go")
    for name, cls in task_sections(task).items():
        parser.add_class_arguments(cls, name)
    add_trainer_arguments(parser)
    return parser


def baseline_encoder(encoder: EncoderConfig) -> EncoderConfig:
    """The random-init baseline of ``encoder``: same architecture and post-processing, new weights."""
    return replace(encoder, init="random")


def evaluate(task: str, config: Namespace, trainer: TrainerSpec) -> list[Result]:
    """Run ``task`` for the encoder and each baseline; rows in that order."""
    unknown = sorted(set(config.baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; valid: {BASELINES}")
    if "supervised" in config.baselines and task not in CLASSIFICATION:
        raise ValueError("the supervised baseline needs labels for classification: linear, knn or finetune")
    run = _runner(task, config, trainer)
    results = [run(config.encoder, "")]
    if "random" in config.baselines:
        results.append(run(baseline_encoder(config.encoder), "random"))
    if "supervised" in config.baselines:
        from .classification.run import train_supervised

        folder = config.out_dir / "supervised"
        trained, weights = train_supervised(
            config.encoder, config.data, config.finetune, trainer, folder, config.dataset
        )
        row = run(weights, "supervised")
        row.encoder = trained.encoder
        results.append(trained if task == "finetune" else row)
    return results


def _runner(task: str, config: Namespace, trainer: TrainerSpec) -> Callable[[EncoderConfig, str], Result]:
    """A function (encoder, sub-folder) -> Result for ``task``."""

    def out(sub: str) -> Path:
        return config.out_dir / (sub or "encoder")

    if task == "linear":
        from .classification.run import run_linear

        return lambda enc, sub: run_linear(enc, config.data, config.probe, trainer, out(sub), config.dataset)
    if task == "knn":
        from .classification.run import run_knn

        return lambda enc, sub: run_knn(enc, config.data, config.knn, trainer.device(), config.dataset)
    if task == "finetune":
        from .classification.run import run_finetune

        return lambda enc, sub: run_finetune(
            enc, config.data, config.finetune, trainer, out(sub), config.dataset
        )[0]
    if task == "detection":
        from .detection.run import run_detection

        return lambda enc, sub: run_detection(
            enc, config.data, config.detection, trainer, out(sub), config.dataset
        )
    if task == "multilabel":
        from .multilabel.run import run_multilabel

        return lambda enc, sub: run_multilabel(
            enc, config.data, config.multilabel, trainer, out(sub), config.dataset
        )
    from .segmentation.run import run_segmentation

    return lambda enc, sub: run_segmentation(
        enc, config.data, config.segmentation, trainer, out(sub), config.dataset
    )


def publish(results: list[Result], config: Namespace, task: str, trainer: TrainerSpec) -> dict[str, Path]:
    """Write the report files; log the table and chart, and every file as an artifact, to the command's
    wandb group."""
    from lightning.pytorch.loggers import WandbLogger

    from selfsup_color.pretrain.loggers import log_files

    paths = write_report(results, config.out_dir, f"{task}_{config.dataset}")
    logger = run_logger(
        trainer.options.get("logger"), config.out_dir, f"{task}-{config.dataset}-report", trainer.group
    )
    if isinstance(logger, WandbLogger):
        rows = [
            [r.encoder, layer, metric, value]
            for r in results
            for layer, m in r.metrics.items()
            for metric, value in m.items()
        ]
        logger.log_table("transfer/results", columns=["encoder", "layer", "metric", "value"], data=rows)
        logger.log_image("transfer/chart", [str(paths["png"])])
        files = [paths["json"], paths["md"], paths["png"], config.out_dir / CONFIG_NAME]
        files += [Path(p) for r in results for p in r.examples]
        name = f"{task}-{config.dataset}-results-{logger.version}"
        log_files(logger, name, "results", [f for f in files if f.is_file()], {"task": task})
        logger.experiment.finish()
    return paths


def run_task(task: str, argv: list[str]) -> int:
    """Parse, save the resolved config, evaluate every encoder, write and log the report."""
    parser = build_parser(task)
    raw = parse(parser, argv, RENAMED)
    group = f"{task}-{raw.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    trainer = TrainerSpec.from_config(raw, group)
    sections = raw.clone()
    sections.pop("trainer")
    config = parser.instantiate_classes(sections)
    if is_global_zero():
        save_config(parser, raw, config.out_dir)
    results = evaluate(task, config, trainer)
    if is_global_zero():
        paths = publish(results, config, task, trainer)
        print(paths["md"].read_text())
        print(f"wrote {paths['json']}, {paths['md']}, {paths['png']}")
    return 0


def report(results: list[Path], out: Path | None = None) -> int:
    """Gather result JSONs written by evaluations into one markdown table.

    Args:
        results: JSON files written by evaluations.
        out: markdown file (default: print).
    """
    text = gather(results)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")
    else:
        print(text)
    return 0


def export(ckpt_path: Path, out: Path, postprocess: Postprocess = "none") -> int:
    """Export a pretraining checkpoint's network as standalone encoder weights.

    Args:
        ckpt_path: a pretraining checkpoint (.ckpt) or exported weights (.pt).
        out: the weights file to write (.pt).
        postprocess: none, absorb_bn (fold BatchNorms), rescale (fold, then unit-variance layers) or
            calibrate (fold, then equal gradient-to-weight ratios, magic_init -cs);
            the file records it.
    """
    from .encoder import export_encoder

    print(f"wrote {export_encoder(ckpt_path, out, postprocess)}")
    return 0


def usage() -> str:
    summaries = {task: f"The {task} evaluation of an encoder and its baselines." for task in TASKS}
    summaries |= {verb: first_paragraph(fn.__doc__) for verb, fn in (("report", report), ("export", export))}
    return command_usage("selfsup-transfer", __doc__, summaries)


def main(argv: list[str] | None = None) -> int:
    """Entry point: dispatch ``argv`` (default ``sys.argv[1:]``) to its verb; errors end in one line
    (``--debug`` for the traceback)."""
    return run_command("selfsup-transfer", dispatch, argv)


def dispatch(args: list[str]) -> int:
    """Run the verb ``args[0]`` on the rest of ``args``."""
    parsed = split_verb(args, usage)
    if isinstance(parsed, int):
        return parsed
    verb, rest = parsed
    if verb in TASKS:
        return run_task(verb, rest)
    if verb == "report":
        return run_function("selfsup-transfer report", report, rest, "results", config_dir=None)
    if verb == "export":
        if len(rest) == 2 and not any(a.startswith("-") for a in rest):  # the previous release's form
            rest = ["--ckpt", rest[0], "--out", rest[1]]
        return run_function(
            "selfsup-transfer export", export, rest, renamed={"--ckpt": "--ckpt_path"}, config_dir=None
        )
    print(f"selfsup-transfer: unknown verb {verb!r}\n\n{usage()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
