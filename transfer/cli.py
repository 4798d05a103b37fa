"""The ``selfsup-transfer`` command: evaluate an encoder and its baselines, write one report.

Subcommands:

- ``linear``, ``knn``, ``finetune``: classification on ImageFolder splits;
- ``detection``, ``segmentation``: Faster R-CNN and FCN heads on COCO-style or VOC data;
- ``report RESULTS.json ... [--out FILE]``: one markdown document of several results;
- ``export CHECKPOINT OUT``: a pretraining checkpoint's network as standalone weights.

Evaluations read a strict YAML config (``--config``; an unknown key fails) with dotted overrides
(``--encoder.checkpoint runs/x/last.ckpt``), print it with ``--print_config``, and run the encoder
then each of ``baselines`` (``random``: the same architecture randomly initialised; ``supervised``:
it trained from scratch on the labels, classification only) on the same data, writing
``<out_dir>/<task>_<dataset>.{json,md,png}`` and logging them to wandb (offline without an API key).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from .common import LoggerConfig, TrainerConfig
from .encoder import EncoderConfig
from .report import Result, gather, write_report

BASELINES = ("random", "supervised")
TASKS = ("linear", "knn", "finetune", "detection", "segmentation")


def _task_sections(task: str) -> dict[str, type]:
    """The config sections of ``task`` besides the shared ones."""
    if task in ("linear", "knn", "finetune"):
        from .classification.data import ClassificationData
        from .classification.run import FinetuneConfig, KNNConfig, ProbeConfig

        sections: dict[str, type] = {"data": ClassificationData}
        sections.update({"linear": {"probe": ProbeConfig}, "knn": {"knn": KNNConfig}, "finetune": {}}[task])
        if task != "knn":
            sections["finetune"] = FinetuneConfig  # also trains the supervised baseline
        return sections
    if task == "detection":
        from .detection.run import DetectionConfig

        return {"detection": DetectionConfig}
    from .segmentation.run import SegmentationConfig

    return {"segmentation": SegmentationConfig}


def build_parser(task: str) -> ArgumentParser:
    """The strict parser of one evaluation subcommand."""
    parser = ArgumentParser(prog=f"selfsup-transfer {task}", description=f"{task} evaluation of an encoder")
    parser.add_argument("--config", action=ActionConfigFile, help="YAML config (strict)")
    parser.add_class_arguments(EncoderConfig, "encoder")
    parser.add_argument("--baselines", type=list[str], default=["random"], help=f"any of {BASELINES}")
    parser.add_argument("--dataset", type=str, required=True, help="the data's name, for tables")
    parser.add_argument("--out_dir", type=Path, required=True, help="where results and logs go")
    parser.add_argument(
        "--device", type=str, default="cpu", help="device of single-process evaluations (knn)"
    )
    for name, cls in _task_sections(task).items():
        parser.add_class_arguments(cls, name)
    parser.add_class_arguments(TrainerConfig, "trainer")
    parser.add_class_arguments(LoggerConfig, "logger")
    return parser


def baseline_encoder(encoder: EncoderConfig) -> EncoderConfig:
    """The random-init baseline of ``encoder``: same architecture, new weights."""
    return replace(encoder, init="random")


def evaluate(task: str, config: Namespace) -> list[Result]:
    """Run ``task`` for the encoder and each baseline; rows in that order."""
    unknown = sorted(set(config.baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; valid: {BASELINES}")
    if "supervised" in config.baselines and task not in ("linear", "knn", "finetune"):
        raise ValueError("the supervised baseline needs labels for classification: linear, knn or finetune")
    run = _runner(task, config)
    results = [run(config.encoder, "")]
    if "random" in config.baselines:
        results.append(run(baseline_encoder(config.encoder), "random"))
    if "supervised" in config.baselines:
        from .classification.run import FinetuneConfig, train_supervised

        finetune = getattr(config, "finetune", None) or FinetuneConfig()
        folder = config.out_dir / "supervised"
        trained, weights = train_supervised(
            config.encoder, config.data, finetune, config.trainer, config.logger, folder, config.dataset
        )
        row = run(weights, "supervised")
        row.encoder = trained.encoder
        results.append(trained if task == "finetune" else row)
    return results


def _runner(task: str, config: Namespace) -> Callable[[EncoderConfig, str], Result]:
    """A function (encoder, sub-folder) -> Result for ``task``."""

    def out(sub: str) -> Path:
        return config.out_dir / (sub or "encoder")

    if task == "linear":
        from .classification.run import run_linear

        return lambda enc, sub: run_linear(
            enc, config.data, config.probe, config.trainer, config.logger, out(sub), config.dataset
        )
    if task == "knn":
        from .classification.run import run_knn

        return lambda enc, sub: run_knn(enc, config.data, config.knn, config.device, config.dataset)
    if task == "finetune":
        from .classification.run import run_finetune

        return lambda enc, sub: run_finetune(
            enc, config.data, config.finetune, config.trainer, config.logger, out(sub), config.dataset
        )[0]
    if task == "detection":
        from .detection.run import run_detection

        return lambda enc, sub: run_detection(
            enc, config.detection, config.trainer, config.logger, out(sub), config.dataset
        )
    from .segmentation.run import run_segmentation

    return lambda enc, sub: run_segmentation(
        enc, config.segmentation, config.trainer, config.logger, out(sub), config.dataset
    )


def is_global_zero() -> bool:
    import os

    return (
        int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0
        and int(os.environ.get("NODE_RANK", "0")) == 0
    )


def publish(results: list[Result], config: Namespace, task: str) -> dict[str, Path]:
    """Write the report files and log them (chart, table, scores) to one wandb run."""
    paths = write_report(results, config.out_dir, f"{task}_{config.dataset}")
    if config.logger.enabled:
        from .common import make_logger

        logger = make_logger(config.logger, config.out_dir, f"{task}-{config.dataset}-report")
        rows = [
            [r.encoder, layer, metric, value]
            for r in results
            for layer, m in r.metrics.items()
            for metric, value in m.items()
        ]
        logger.log_table("transfer/results", columns=["encoder", "layer", "metric", "value"], data=rows)
        logger.log_image("transfer/chart", [str(paths["png"])])
        logger.experiment.finish()
    return paths


def run_task(task: str, argv: list[str]) -> int:
    parser = build_parser(task)
    config = parser.instantiate(parser.parse_args(argv))
    results = evaluate(task, config)
    if is_global_zero():
        paths = publish(results, config, task)
        print(paths["md"].read_text())
        print(f"wrote {paths['json']}, {paths['md']}, {paths['png']}")
    return 0


def run_report(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="selfsup-transfer report", description="gather results into one table"
    )
    parser.add_argument("results", type=Path, nargs="+", help="JSON files written by evaluations")
    parser.add_argument("--out", type=Path, default=None, help="markdown file (default: print)")
    args = parser.parse_args(argv)
    text = gather(args.results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def run_export(argv: list[str]) -> int:
    from .encoder import export_encoder

    parser = argparse.ArgumentParser(
        prog="selfsup-transfer export", description="export a checkpoint's network"
    )
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    print(f"wrote {export_encoder(args.checkpoint, args.out)}")
    return 0


USAGE = (
    f"usage: selfsup-transfer {{{','.join((*TASKS, 'report', 'export'))}}} [options]  (--help per command)"
)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command in TASKS:
        return run_task(command, rest)
    if command == "report":
        return run_report(rest)
    if command == "export":
        return run_export(rest)
    print(f"selfsup-transfer: unknown command {command!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
