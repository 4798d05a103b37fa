"""Image loading: ours (decode, resample only the crop) against bare decoding and torchvision.

All three read the same files: hymenoptera train + val (~500 px JPEGs and one GIF), unpacked once
into the cache. Per image:

- bare: ``Image.open(path).convert("RGB")``, which decodes every pixel; the ceiling of a Pillow loader;
- torchvision: the ``ImageFolder`` PIL loader, then ``Resize(256)``, ``RandomCrop(176)``,
  ``RandomHorizontalFlip()``, ``PILToTensor()``;
- ours: ``ImageFiles(files, 256, 176, train=True)[i]``, a 176 x 176 x 3 uint8 tensor.

This process runs ``--threads`` torch threads (default 1, as a DataLoader worker does).

The three are interleaved so that the machine's drifting speed (often +-30% here) hits all alike.
In this process, each round walks the files in chunks of ``--chunk``, and each chunk is read by all
three, in an order that rotates from chunk to chunk; a round's time for a loader is the sum over its
chunks. ``--workers N`` instead runs each loader through a DataLoader with N persistent worker
processes (batches of ``--batch``), one whole pass after the other. We print median images/s and the
median of the per-round ratios.

Run: ``python -m experiments.benchmarks.loading [--rounds 5 --workers 0]``
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from experiments.benchmarks.common import describe_machine, time_call
from experiments.paths import SHARED
from selfsup_color.command import command_parser, parse
from selfsup_color.data import ImageFiles, cache_dir, collate_images, extract_archive, find_images
from selfsup_color.data.jpeg import jpeg_decoder


def bare_decode(path: str) -> int:
    """Decode every pixel, keep nothing."""
    with Image.open(path) as image:
        image.convert("RGB")
    return 1


def torchvision_crop(path: str, transform: Callable[[Image.Image], torch.Tensor]) -> torch.Tensor:
    """What ``ImageFolder`` does: PIL loader, then the transform."""
    with Image.open(path) as image:
        return transform(image.convert("RGB"))


class PerFile(Dataset):
    """``load(path)`` of each file (picklable when ``load`` is)."""

    def __init__(self, files: list[Path], load: Callable[[str], object]) -> None:
        self.files, self.load = [str(f) for f in files], load

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> object:
        return self.load(self.files[index])


def count(items: list[object]) -> int:
    return len(items)


def one_pass(dataset: Dataset, workers: int, batch: int, collate: Callable) -> Callable[[], object]:
    """A function that reads every item once through a DataLoader with ``workers`` processes."""
    loader = DataLoader(dataset, batch, num_workers=workers, persistent_workers=True, collate_fn=collate)
    return lambda: sum(1 for _ in loader)


def chunked_rounds(datasets: dict[str, Dataset], size: int, chunk: int) -> dict[str, float]:
    """One round in this process: seconds per loader, summed over chunks read in rotating order."""
    names = list(datasets)
    seconds = dict.fromkeys(names, 0.0)
    for number, start in enumerate(range(0, size, chunk)):
        indices = range(start, min(size, start + chunk))
        for name in names[number % len(names) :] + names[: number % len(names)]:
            began = time.perf_counter()
            for index in indices:
                datasets[name][index]
            seconds[name] += time.perf_counter() - began
    return seconds


def main() -> None:
    parser = command_parser("python -m experiments.benchmarks.loading", __doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=SHARED / "data" / "hymenoptera.tar")
    parser.add_argument("--cache", type=Path, default=None, help="where to unpack (default: the cache)")
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--crop", type=int, default=176)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of one pass each")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: in this process)")
    parser.add_argument("--batch", type=int, default=40, help="batch size with --workers")
    parser.add_argument("--chunk", type=int, default=20, help="files per interleaved chunk, in this process")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads in this process (a DataLoader worker has 1)"
    )
    args = parse(parser, sys.argv[1:], {})
    torch.set_num_threads(args.threads)

    root = extract_archive(args.archive, args.cache or cache_dir())
    files = find_images([root / "train", root / "val"])
    reference = transforms.Compose(
        [
            transforms.Resize(args.resize),
            transforms.RandomCrop(args.crop),
            transforms.RandomHorizontalFlip(),
            transforms.PILToTensor(),
        ]
    )
    ours = ImageFiles(files, args.resize, args.crop, train=True)
    datasets = {
        "bare decode": PerFile(files, bare_decode),
        "torchvision": PerFile(files, partial(torchvision_crop, transform=reference)),
        "ours": ours,
    }
    collates = {"bare decode": count, "torchvision": torch.utils.data.default_collate, "ours": collate_images}
    where = f"{args.workers} workers, batches of {args.batch}" if args.workers else "one process"
    decoder = jpeg_decoder()
    print(
        f"{len(files)} files of {root}, resize {args.resize}, crop {args.crop}, {where}; "
        f"JPEG decoder: {decoder[0] if decoder else 'Pillow'}; {describe_machine()}"
    )
    passes = {
        name: one_pass(data, args.workers, args.batch, collates[name])
        for name, data in datasets.items()
        if args.workers
    }
    seconds: dict[str, list[float]] = {name: [] for name in datasets}
    for epoch in range(-1, args.rounds):  # round -1 warms up: file cache, worker start
        ours.set_epoch(epoch + 1)  # new crops each round (workers see it: the epoch is in shared memory)
        if args.workers:
            times = {name: time_call(run, 1, warmup=0) for name, run in passes.items()}
        else:
            times = chunked_rounds(datasets, len(files), args.chunk)
        for name, value in times.items():
            if epoch >= 0:
                seconds[name].append(value)

    def ratio(a: str, b: str) -> float:
        return statistics.median(tb / ta for ta, tb in zip(seconds[a], seconds[b], strict=True))

    for name in datasets:
        rate = len(files) / statistics.median(seconds[name])
        print(f"{name:<12} {rate:8.0f} images/s  {ratio(name, 'bare decode'):5.2f}x bare decode")
    print(
        f"ours / bare decode {ratio('ours', 'bare decode'):.2f} (goal >= 0.8), "
        f"ours / torchvision {ratio('ours', 'torchvision'):.2f} (goal >= 2)"
    )


if __name__ == "__main__":
    main()
