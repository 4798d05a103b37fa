"""Linear probes on 5 layers: one pass (one encoder forward per batch for all probes) against 5 runs.

Both train the same probes (average pooling to ~9000 values, BatchNorm, linear) with the same SGD on
the same uint8 batches, through real Lightning ``Trainer.fit`` calls, with the encoder frozen. The
one-pass run probes the 5 taps together; the baseline runs ``Trainer.fit`` once per tap, each
running the encoder up to that tap (as separate per-layer evaluations do).

By default images are decoded beforehand (scikit-image photo crops in memory), so the figure is the
probes' compute alone. ``--folder DIR`` (an ImageFolder, e.g. hymenoptera's train split) reads real
files through the transfer data pipeline instead, as real runs do: then each separate run also
decodes every image again.

``--recipe CONFIG`` times what a user runs instead: whole ``selfsup-transfer linear`` processes on a
recipe (no baselines), one probing the 5 taps and one per tap, each paying start-up, encoder loading,
reading and decoding the data, feature extraction and probe training.

Run: ``python -m experiments.benchmarks.probes [--arch eccv16 --width 0.5 --crop 64 --images 512]``,
``python -m experiments.benchmarks.probes --folder data/hymenoptera/train`` or
``python -m experiments.benchmarks.probes --recipe experiments/transfer/linear_hymenoptera_cpu.yaml``
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from jsonargparse import Namespace
from torch.utils.data import DataLoader, Dataset

from experiments.benchmarks.common import describe_machine, photo_crops
from selfsup_color.command import command_parser, parse
from transfer.classification.data import ClassificationData
from transfer.classification.probes import LinearProbes, pool_sizes, tap_shapes
from transfer.common import OptimConfig
from transfer.encoder import EncoderConfig, build_encoder
from transfer.trainer import TrainerSpec


class Batches(Dataset):
    """Labelled uint8 crops held in memory."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"rgb": self.images[index], "label": self.labels[index]}


def fit_seconds(taps: list[str], args: Namespace, data: Batches | None, out: Path) -> float:
    """Wall time of one ``Trainer.fit`` training probes on ``taps`` for ``args.epochs`` epochs."""
    encoder = build_encoder(EncoderConfig(init="random", arch=args.arch, arch_options=args.options))
    shapes = tap_shapes(encoder, taps, args.crop)
    probes = LinearProbes(
        encoder, pool_sizes(shapes), {t: s[0] for t, s in shapes.items()}, 10, OptimConfig(lr=0.01)
    )
    options = {"max_epochs": args.epochs, "accelerator": "cpu", "enable_progress_bar": False, "logger": False}
    trainer = TrainerSpec(options).build(out, "probes", num_sanity_val_steps=0)
    if data is None:
        resize = args.crop + args.crop // 8
        folder = ClassificationData(
            args.folder, val_fraction=0.5, resize=resize, crop=args.crop, batch_size=args.batch, num_workers=0
        )
        loader = folder.loader(folder.splits()[0], train=True)
    else:
        loader = DataLoader(data, batch_size=args.batch, shuffle=True)
    start = time.perf_counter()
    trainer.fit(probes, train_dataloaders=loader)
    return time.perf_counter() - start


def cli_seconds(taps: list[str], args: Namespace, out: Path) -> float:
    """Wall time of one ``selfsup-transfer linear`` process on ``args.recipe`` probing ``taps``."""
    encoder = (
        ["--encoder.ckpt_path", args.ckpt_path]
        if args.ckpt_path
        else ["--encoder.init", "random", "--encoder.arch", args.arch,
              "--encoder.arch_options", json.dumps(args.options)]
    )  # fmt: skip
    name = "-".join(taps)
    command = ["selfsup-transfer", "linear", "--config", args.recipe, "--baselines=[]",
               f"--probe.taps=[{','.join(taps)}]", "--out_dir", str(out / name), *encoder]  # fmt: skip
    log = out / f"{name}.log"
    start = time.perf_counter()
    with log.open("w") as sink:
        code = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - start
    if code:
        raise SystemExit(f"{' '.join(command)} failed ({code}):\n{log.read_text()[-3000:]}")
    return seconds


def main() -> None:
    parser = command_parser("python -m experiments.benchmarks.probes", __doc__.splitlines()[0])
    parser.add_argument("--arch", default="eccv16")
    parser.add_argument("--width", type=float, default=0.5, help="eccv16 width multiplier")
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--taps", nargs="+", default=["conv1", "conv2", "conv3", "conv4", "conv5"])
    parser.add_argument("--folder", default=None, help="an ImageFolder to read instead of in-memory crops")
    parser.add_argument(
        "--recipe", default=None, help="time whole selfsup-transfer linear runs of this config"
    )
    parser.add_argument("--ckpt_path", default=None, help="with --recipe: the encoder (default: random init)")
    args = parse(parser, sys.argv[1:], {"--checkpoint": "--ckpt_path"})
    args.options = {"width": args.width} if args.arch == "eccv16" else {}
    if args.recipe:
        print(f"selfsup-transfer linear --config {args.recipe}, taps {args.taps}; {describe_machine()}")
        with tempfile.TemporaryDirectory() as folder:
            together = cli_seconds(args.taps, args, Path(folder))
            separate = {tap: cli_seconds([tap], args, Path(folder)) for tap in args.taps}
        report(together, separate)
        return
    if args.folder:
        data, source = None, f"files of {args.folder} (half of them)"
    else:
        images = torch.from_numpy(photo_crops(args.images, args.crop)).permute(0, 3, 1, 2).contiguous()
        data, source = Batches(images, torch.arange(args.images) % 10), f"{args.images} in-memory crops"
    print(
        f"{args.arch} {args.options}, {source} at {args.crop} px, batch {args.batch}, "
        f"{args.epochs} epoch(s), taps {args.taps}; {describe_machine()}"
    )
    with tempfile.TemporaryDirectory() as folder:
        fit_seconds(args.taps[:1], args, data, Path(folder))  # warm up: imports, allocator, threads
        together = fit_seconds(args.taps, args, data, Path(folder))
        separate = {tap: fit_seconds([tap], args, data, Path(folder)) for tap in args.taps}
    report(together, separate)


def report(together: float, separate: dict[str, float]) -> None:
    """Print both figures and their ratio."""
    total = sum(separate.values())
    print(f"one pass, {len(separate)} probes:  {together:7.2f} s")
    for tap, seconds in separate.items():
        print(f"  separate run {tap:<8} {seconds:7.2f} s")
    print(f"{len(separate)} separate runs:     {total:7.2f} s")
    print(f"one pass is {total / together:.2f}x faster (goal >= 3x)")


if __name__ == "__main__":
    main()
