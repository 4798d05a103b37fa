"""The ``prior`` and ``colorize`` commands of ``selfsup-color``."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def prior_command(argv: list[str]) -> int:
    """``selfsup-color prior --data DIR --out DIR``: a data set's smoothed ab prior, saved and plotted."""
    parser = argparse.ArgumentParser(prog="selfsup-color prior", description=prior_command.__doc__)
    parser.add_argument("--data", required=True, help="image folder, file list (.txt) or 'builtin'")
    parser.add_argument("--out", type=Path, required=True, help="folder for prior.json and prior.png")
    parser.add_argument("--images", type=int, default=10_000, help="images to use (a seeded sample)")
    parser.add_argument("--resize", type=int, default=256, help="shorter side before the centre crop")
    parser.add_argument("--crop", type=int, default=176, help="centre crop size")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sigma", type=float, default=5.0, help="Gaussian smoothing of the histogram")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    from ..data import ColorizationDataModule
    from .prior_pass import estimate_data_prior, write_prior

    data = ColorizationDataModule(
        train=args.data,
        resize=args.resize,
        crop=args.crop,
        batch_size=args.batch_size,
        num_workers=args.workers,
        persistent_workers=False,
    )
    record = estimate_data_prior(data, args.images, torch.device(args.device), args.sigma, source=args.data)
    json_path, png_path, _ = write_prior(record, args.out, title=f"prior of {args.data}")
    p = record.prior
    print(
        f"prior of {record.n_images} images ({record.n_pixels} pixels, {record.n_gray_skipped} grayscale "
        f"skipped): {int((p > 0).sum())} bins used, max {float(p.max()):.4f}; "
        f"wrote {json_path} and {png_path}"
    )
    return 0


def colorize_command(argv: list[str]) -> int:
    """``selfsup-color colorize --ckpt C --out DIR INPUT...``: colorize photos at full resolution."""
    parser = argparse.ArgumentParser(prog="selfsup-color colorize", description=colorize_command.__doc__)
    parser.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--ckpt", type=Path, required=True, help="a pretraining checkpoint (.ckpt)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--temperature", type=float, default=None, help="annealed-mean T (default: the run's)"
    )
    parser.add_argument(
        "--process-size",
        type=int,
        default=256,
        help="shorter side the network sees (0: full resolution); ab is upsampled back",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    from ..colorize import colorize_files, expand_inputs
    from .checkpoint import load_pretraining_module

    module = load_pretraining_module(args.ckpt, map_location=args.device)
    temperature = module.hparams.temperature if args.temperature is None else args.temperature
    written = colorize_files(
        module,
        expand_inputs(args.inputs),
        args.out,
        temperature=temperature,
        process_size=args.process_size or None,
        device=args.device,
    )
    print(f"wrote {len(written)} colorized image(s) to {args.out}")
    return 0


def _named_checkpoint(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH (e.g. ours=runs/x/last.ckpt), got {text!r}")
    return name, Path(path)


def evaluate_command(argv: list[str]) -> int:
    """``selfsup-color evaluate --ckpt NAME=C ... --out DIR PHOTO...``: AuC, rebalanced AuC,
    colourfulness and PSNR of each checkpoint (and the gray baseline) on photos, with a grid."""
    parser = argparse.ArgumentParser(prog="selfsup-color evaluate", description=evaluate_command.__doc__)
    parser.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument(
        "--ckpt", type=_named_checkpoint, action="append", required=True, help="NAME=PATH, repeatable"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for scores.json/.md and grid.png")
    parser.add_argument(
        "--process-size", type=int, default=256, help="shorter side the network sees (0: full resolution)"
    )
    parser.add_argument("--prior", type=Path, default=None, help="rebalancing prior (default: own)")
    parser.add_argument("--grid", type=int, default=6, help="photos in the grid (0: none)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    from ..colorize import expand_inputs
    from ..evaluate import evaluate_photos, network_predictor, spread, write_evaluation
    from .checkpoint import load_pretraining_module
    from .prior_pass import read_prior

    names = [name for name, _ in args.ckpt]
    if len(set(names)) != len(names):
        parser.error(f"--ckpt names must differ, got {names}")
    predictors, methods = {}, {}
    for name, path in args.ckpt:
        module = load_pretraining_module(path, map_location=args.device)
        predictors[name] = network_predictor(module, module.hparams.temperature, args.process_size or None)
        methods[name] = {"checkpoint": str(path), "loss": module.hparams.loss, "lam": module.hparams.lam}
    paths = expand_inputs(args.inputs)
    prior = None if args.prior is None else read_prior(args.prior).prior
    evaluation = evaluate_photos(
        predictors, paths, prior, grid_paths=spread(paths, args.grid) if args.grid else (), device=args.device
    )
    about = {
        "data": " ".join(map(str, args.inputs)),
        "process_size": args.process_size or "full resolution",
        "prior": str(args.prior) if args.prior else "the photos' own (nearest-bin histogram, sigma 5)",
        "methods": methods,
    }
    written = write_evaluation(evaluation, args.out, about)
    print((args.out / "scores.md").read_text())
    print("wrote " + ", ".join(map(str, written)))
    return 0
