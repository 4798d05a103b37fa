"""The ``prior``, ``colorize`` and ``evaluate`` verbs of ``selfsup-color``.

Each verb is a typed function; :func:`~selfsup_color.command.run_function` turns its signature into
strict flags (``--config``, ``--print_config``) and saves the resolved config in its ``out`` folder.
Each checks first that ``out`` is writable (:func:`~selfsup_color.io.ensure_writable_dir`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..colorize import MAX_SIDE
from ..data.decode import MAX_PIXELS
from ..evaluate import MAX_PIXELS as EVALUATE_MAX_PIXELS
from ..io import ensure_writable_dir

RENAMED = {
    "prior": {"--batch-size": "--batch_size"},
    "colorize": {"--ckpt": "--ckpt_path", "--process-size": "--process_size"},
    "evaluate": {"--ckpt": "--ckpt_path.", "--process-size": "--process_size"},
}
"""Flags of the previous release, still accepted with a warning."""


def default_device(device: str | None) -> str:
    """``device``, or the first GPU when there is one, else the CPU."""
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def prior(
    data: str,
    out: Path,
    images: int = 10_000,
    resize: int = 256,
    crop: int = 176,
    batch_size: int = 64,
    workers: int = 2,
    sigma: float = 5.0,
    device: str | None = None,
) -> int:
    """A data set's smoothed ab prior, saved (``prior.json``) and plotted (``prior.png``).

    Args:
        data: image folder, file list (.txt) or ``builtin``.
        out: folder for prior.json, prior.png and config.yaml.
        images: images to use (a seeded sample).
        resize: shorter side before the centre crop.
        crop: centre crop size.
        batch_size: images per batch.
        workers: loader processes.
        sigma: Gaussian smoothing of the histogram (ab units).
        device: where to count (default: the first GPU, else the CPU).
    """
    from ..data import ColorizationDataModule
    from .prior_pass import estimate_data_prior, write_prior

    ensure_writable_dir(out)
    loader = ColorizationDataModule(
        train=data,
        resize=resize,
        crop=crop,
        batch_size=batch_size,
        num_workers=workers,
        persistent_workers=False,
    )
    record = estimate_data_prior(loader, images, torch.device(default_device(device)), sigma, source=data)
    json_path, png_path, _ = write_prior(record, out, title=f"prior of {data}")
    p = record.prior
    print(
        f"prior of {record.n_images} images ({record.n_pixels} pixels; skipped: {record.n_gray_skipped} "
        f"grayscale, {record.n_unreadable} unreadable): {int((p > 0).sum())} bins used, "
        f"max {float(p.max()):.4f}; wrote {json_path} and {png_path}"
    )
    return 0


def colorize(
    inputs: list[str],
    ckpt_path: Path,
    out: Path,
    temperature: float | None = None,
    process_size: int = 256,
    max_side: int = MAX_SIDE,
    max_pixels: int = MAX_PIXELS,
    device: str | None = None,
) -> int:
    """Colorize photos at full resolution with a pretraining checkpoint.

    Args:
        inputs: image files, folders (searched recursively), .txt file lists or ``builtin``.
        ckpt_path: a pretraining checkpoint (.ckpt).
        out: output folder.
        temperature: annealed-mean T (default: the run's).
        process_size: shorter side the network sees (0: full resolution); ab is upsampled back.
        max_side: longest side the network sees (the image is scaled down to fit).
        max_pixels: skip (warning, before decoding) files declaring more pixels (~100 bytes each).
        device: where to run (default: the first GPU, else the CPU).
    """
    from ..colorize import colorize_files
    from ..data.files import find_images
    from .checkpoint import load_pretraining_module

    ensure_writable_dir(out)
    device = default_device(device)
    module = load_pretraining_module(ckpt_path, map_location=device)
    written = colorize_files(
        module,
        find_images(inputs),
        out,
        temperature=module.hparams.temperature if temperature is None else temperature,
        process_size=process_size or None,
        device=device,
        max_side=max_side,
        max_pixels=max_pixels,
    )
    print(f"wrote {len(written)} colorized image(s) to {out}")
    return 0


def evaluate(
    inputs: list[str],
    ckpt_path: dict[str, Path],
    out: Path,
    process_size: int = 256,
    max_side: int = MAX_SIDE,
    max_pixels: int = EVALUATE_MAX_PIXELS,
    prior: Path | None = None,
    grid: int = 6,
    device: str | None = None,
) -> int:
    """AuC, rebalanced AuC, colourfulness and PSNR of each checkpoint (and the gray baseline) on photos.

    Writes scores.json, scores.md and a grid of examples.

    Args:
        inputs: image files, folders (searched recursively), .txt file lists or ``builtin``.
        ckpt_path: checkpoints by name, e.g. ``--ckpt_path.ours runs/x/last.ckpt --ckpt_path.l2 ...``.
        out: folder for scores.json/.md, grid.png and config.yaml.
        process_size: shorter side the network sees (0: full resolution).
        max_side: longest side the network sees (the image is scaled down to fit).
        max_pixels: skip (warning, before decoding) files declaring more pixels (~300 bytes each).
        prior: rebalancing prior (default: the photos' own).
        grid: photos in the grid (0: none).
        device: where to run (default: the first GPU, else the CPU).
    """
    from ..data.files import find_images
    from ..evaluate import evaluate_photos, network_predictor, spread, write_evaluation
    from .checkpoint import load_pretraining_module
    from .prior_pass import read_prior

    if not ckpt_path:
        raise ValueError("evaluate needs at least one checkpoint: --ckpt_path.NAME PATH")
    ensure_writable_dir(out)
    device = default_device(device)
    predictors, methods = {}, {}
    for name, path in ckpt_path.items():
        module = load_pretraining_module(path, map_location=device)
        predictors[name] = network_predictor(
            module, module.hparams.temperature, process_size or None, max_side
        )
        methods[name] = {"checkpoint": str(path), "loss": module.hparams.loss, "lam": module.hparams.lam}
    paths = find_images(inputs)
    evaluation = evaluate_photos(
        predictors,
        paths,
        None if prior is None else read_prior(prior).prior,
        grid_paths=spread(paths, grid) if grid else (),
        device=device,
        max_pixels=max_pixels,
    )
    about = {
        "data": " ".join(map(str, inputs)),
        "process_size": process_size or "full resolution",
        "prior": str(prior) if prior else "the photos' own (nearest-bin histogram, sigma 5)",
        "methods": methods,
    }
    written = write_evaluation(evaluation, out, about)
    print((out / "scores.md").read_text())
    print("wrote " + ", ".join(map(str, written)))
    return 0
