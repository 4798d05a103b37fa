"""``selfsup-color quickstart``: pretrain on the built-in photos, colorize held-out ones, write a report."""

from __future__ import annotations

import shutil
import time
from importlib import resources
from pathlib import Path
from typing import Any

import torch

QUICKSTART_RECIPE = "quickstart.yaml"


def recipe_path(name: str) -> Path:
    """A recipe shipped inside the package (``selfsup_color/recipes``)."""
    path = Path(str(resources.files("selfsup_color") / "recipes" / name))
    if not path.is_file():
        raise FileNotFoundError(
            f"recipe {name} is not installed with selfsup_color (looked in {path.parent})"
        )
    return path


def _held_out_batch(files: list[Path], size: int) -> torch.Tensor:
    from ..data import ImageFiles, collate_images

    images = ImageFiles(files, resize=size, crop=size, train=False)
    return collate_images([images[i] for i in range(len(images))])["rgb"]


def _metric_rows(metrics: dict[str, float], stage: str = "val") -> list[str]:
    def get(name: str) -> str:
        value = metrics.get(f"{stage}/{name}")
        return "-" if value is None else f"{value:.4f}"

    return [
        "| metric | ours | gray (ab = 0) | ground truth |",
        "|---|---|---|---|",
        f"| AuC (ab error 0-150) | {get('auc')} | {get('auc_gray')} | 1 |",
        f"| rebalanced AuC | {get('rebalanced_auc')} | {get('rebalanced_auc_gray')} | 1 |",
        f"| colourfulness | {get('colourfulness')} | 0 | {get('colourfulness_truth')} |",
        f"| loss | {get('loss')} | | |",
    ]


SMOKE_TEST = (
    "This is a smoke test: it checks that the whole pipeline runs, not what the method learns. For real "
    "colours and features, pretrain with `experiments/pretrain/eccv16-w025_imagenette64_cpu1x64_1500.yaml` "
    "(Imagenette, 64 px, 6 min on 2 CPU cores; its results: docs/results.md)."
)
"""The report's first line: what the quick start is for, and where the real recipe is."""


def write_report(
    out: Path, summary: dict[str, Any], metrics: dict[str, float], images: dict[str, str]
) -> Path:
    """A markdown report of the run: what was trained, the validation metrics, the images."""
    lines = [
        "# selfsup-color quick start",
        "",
        SMOKE_TEST,
        "",
        f"Pretrained `{summary['arch']}` ({summary['params'] / 1e6:.2f} M parameters) for "
        f"{summary['steps']} steps at batch {summary['batch_size']} on {summary['train_images']} built-in "
        f"photos, in {summary['train_seconds']:.0f} s; the whole quick start took "
        f"{summary['total_seconds']:.0f} s "
        f"({torch.get_num_threads()} CPU threads).",
        "",
        f"Validation on {summary['val_images']} held-out photos (centre crops, annealed mean T = "
        f"{summary['temperature']}):",
        "",
        *_metric_rows(metrics),
        "",
    ]
    for caption, name in images.items():
        lines += [f"**{caption}**", "", f"![{caption}]({name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def quickstart_command(argv: list[str]) -> int:
    """Pretrain on the photos inside scikit-image, colorize the held-out ones and write a report.

    Takes every option of ``selfsup-color fit`` (``--config``, ``--print_config``, ``--trainer.max_steps 50``
    ...) over the packaged recipe; the run folder is ``--trainer.default_root_dir`` (default
    ``runs/quickstart``).
    """
    if any(a in ("-h", "--help") for a in argv):
        print(f"selfsup-color quickstart: {quickstart_command.__doc__}\nThe options of selfsup-color fit:\n")
    from ..command import rename_flags

    argv = rename_flags(argv, {"--out": "--trainer.default_root_dir"}, "selfsup-color quickstart")
    start = time.perf_counter()
    from ..colorize import colorize_files, colorize_lightness
    from ..core.color import rgb_to_ab, rgb_to_lightness
    from ..data import find_images
    from ..viz import colorization_grid, save_png
    from .cli import run_lightning_cli

    cli = run_lightning_cli(["fit", "--config", str(recipe_path(QUICKSTART_RECIPE)), *argv])
    out = Path(cli.trainer.default_root_dir)
    train_seconds = time.perf_counter() - start
    trainer, module, data = cli.trainer, cli.model, cli.datamodule
    results = trainer.validate(module, datamodule=data, verbose=False)
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}

    module.eval()
    val_files = find_images("builtin:val")
    colorize_files(
        module, val_files, out / "colorized", temperature=module.hparams.temperature, process_size=256
    )
    rgb = _held_out_batch(val_files, 256)
    lightness, truth = rgb_to_lightness(rgb), rgb_to_ab(rgb)
    with torch.no_grad():
        pred = colorize_lightness(module, lightness, module.hparams.temperature)
    save_png(colorization_grid(lightness, pred, truth), out / "grid.png")
    prior_png = next(out.rglob("prior.png"), None)
    images = {"Held-out photos: input (L only), ours, ground truth": "grid.png"}
    if prior_png is not None:
        shutil.copyfile(prior_png, out / "prior.png")
        images["The empirical ab prior of the training photos (log10 probability)"] = "prior.png"
    summary = {
        "arch": module.hparams.arch,
        "params": sum(p.numel() for p in module.net.parameters()),
        "steps": trainer.global_step,
        "batch_size": data.hparams.get("batch_size") if hasattr(data, "hparams") else "?",
        "train_images": len(data.train_files),
        "val_images": len(data.val_files),
        "train_seconds": train_seconds,
        "total_seconds": time.perf_counter() - start,
        "temperature": module.hparams.temperature,
    }
    report = write_report(out, summary, metrics, images)
    print(f"quick start done in {summary['total_seconds']:.0f} s: {report}")
    print(SMOKE_TEST)
    print("\n".join(_metric_rows(metrics)))
    return 0
