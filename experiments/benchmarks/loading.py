"""Image loading: ours (decode, resample the crop's box only) against bare decoding and torchvision.

All three read the same files: hymenoptera train + val (~500 px JPEGs and one GIF), unpacked once
into the cache. Per image:

- bare: ``Image.open(path).convert("RGB")``, which decodes every pixel; the ceiling for any loader;
- torchvision: the ``ImageFolder`` PIL loader, then ``Resize(256)``, ``RandomCrop(176)``,
  ``RandomHorizontalFlip()``, ``PILToTensor()``;
- ours: ``ImageFiles(files, 256, 176, train=True)[i]``, a 176 x 176 x 3 uint8 tensor.

Rounds interleave the three, so that the machine's drifting speed hits all alike; we print median
images/s and the median of the per-round ratios. ``--workers N`` runs each through a DataLoader with
N persistent worker processes (batches of ``--batch``) instead of in this process.

Run: ``python -m experiments.benchmarks.loading [--rounds 5 --workers 0]``
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from experiments.benchmarks.common import describe_machine, time_call
from selfsup_color.data import ImageFiles, cache_dir, collate_images, extract_archive, find_images

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SELFSUP_COLOR_SHARED", REPO.parent / "shared"))


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
    """A function that reads every item once: in this process, or through a DataLoader."""
    if workers == 0:
        return lambda: [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
    loader = DataLoader(dataset, batch, num_workers=workers, persistent_workers=True, collate_fn=collate)
    return lambda: sum(1 for _ in loader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=SHARED / "data" / "hymenoptera.tar")
    parser.add_argument("--cache", type=Path, default=None, help="where to unpack (default: the cache)")
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--crop", type=int, default=176)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of one pass each")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: in this process)")
    parser.add_argument("--batch", type=int, default=40, help="batch size with --workers")
    args = parser.parse_args()

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
    variants = {
        "bare decode": one_pass(PerFile(files, bare_decode), args.workers, args.batch, count),
        "torchvision": one_pass(
            PerFile(files, partial(torchvision_crop, transform=reference)),
            args.workers,
            args.batch,
            torch.utils.data.default_collate,
        ),
        "ours": one_pass(ours, args.workers, args.batch, collate_images),
    }
    where = f"{args.workers} workers, batches of {args.batch}" if args.workers else "one process"
    print(
        f"{len(files)} files of {root}, resize {args.resize}, crop {args.crop}, {where}; {describe_machine()}"
    )
    for run in variants.values():  # warm up: file cache, worker start
        run()
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for epoch in range(args.rounds):
        ours.set_epoch(epoch)  # new crops each round (workers see it: the epoch is in shared memory)
        for name, run in variants.items():
            seconds[name].append(time_call(run, 1, warmup=0))

    def ratio(a: str, b: str) -> float:
        return statistics.median(tb / ta for ta, tb in zip(seconds[a], seconds[b], strict=True))

    for name in variants:
        rate = len(files) / statistics.median(seconds[name])
        print(f"{name:<12} {rate:8.0f} images/s  {ratio(name, 'bare decode'):5.2f}x bare decode")
    print(
        f"ours / bare decode {ratio('ours', 'bare decode'):.2f} (goal >= 0.8), "
        f"ours / torchvision {ratio('ours', 'torchvision'):.2f} (goal >= 2)"
    )


if __name__ == "__main__":
    main()
