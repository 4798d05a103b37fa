"""Labelled images for classification transfer: ImageFolder splits, or one folder split in two.

A folder holds one subfolder per class (``root/<class>/**/*.jpg``, as torchvision's ImageFolder);
class indices follow the sorted subfolder names. Items are ``(crop x crop x 3 uint8, label)``, read
by :class:`~selfsup_color.data.ImageFiles` (random crop and flip for training, centre crop for
evaluation), so a broken file is skipped with a warning instead of ending the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from selfsup_color.data import ImageFiles, find_images
from selfsup_color.data.datamodule import split_files


@dataclass(frozen=True)
class LabelledFiles:
    """Image files, their class indices and the class names."""

    files: list[Path]
    labels: list[int]
    classes: list[str]

    def subset(self, keep: Sequence[int]) -> LabelledFiles:
        return LabelledFiles([self.files[i] for i in keep], [self.labels[i] for i in keep], self.classes)


def labelled_folder(root: str | Path, classes: Sequence[str] | None = None) -> LabelledFiles:
    """The images under ``root/<class>/``; ``classes`` fixes the class list (e.g. the train split's)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"classification data {root} is not a folder of class subfolders")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = list(classes) if classes is not None else found
    if not names:
        raise ValueError(f"{root} has no class subfolders (expected {root}/<class>/<image files>)")
    missing = sorted(set(names) - set(found))
    extra = sorted(set(found) - set(names))
    if missing or extra:
        raise ValueError(
            f"{root}: class folders differ from the training classes (missing {missing}, extra {extra})"
        )
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(names):
        found_files = find_images(root / name)
        files += found_files
        labels += [index] * len(found_files)
    return LabelledFiles(files, labels, names)


def split_labelled(data: LabelledFiles, fraction: float, seed: int) -> tuple[LabelledFiles, LabelledFiles]:
    """(train, val) of one folder, val holding ``fraction`` of the images, chosen with ``seed``."""
    index_of = {path: i for i, path in enumerate(data.files)}
    train, val = split_files(list(data.files), fraction, seed)
    return data.subset([index_of[p] for p in train]), data.subset([index_of[p] for p in val])


def subsample(data: LabelledFiles, limit: int | None, seed: int) -> LabelledFiles:
    """At most ``limit`` images, the same fraction of every class (seeded); all if ``limit`` is None."""
    if limit is None or limit >= len(data.files):
        return data
    generator = torch.Generator().manual_seed(seed)
    keep: list[int] = []
    labels = torch.tensor(data.labels)
    for label in range(len(data.classes)):
        members = torch.nonzero(labels == label).flatten()
        count = round(limit * len(members) / len(data.files))
        keep += members[torch.randperm(len(members), generator=generator)[:count]].tolist()
    return data.subset(sorted(keep))


class LabelledImages(Dataset[tuple[Tensor, int] | None]):
    """``(crop, label)`` items of :class:`LabelledFiles`; None for an unreadable file."""

    def __init__(self, data: LabelledFiles, resize: int, crop: int, train: bool, seed: int = 0) -> None:
        self.data = data
        self.images = ImageFiles(data.files, resize, crop, train=train, seed=seed)

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        self.images.set_epoch(epoch)

    def __getitem__(self, index: int) -> tuple[Tensor, int] | None:
        image = self.images[index]
        return None if image is None else (image, self.data.labels[index])


def collate_labelled(items: Sequence[tuple[Tensor, int] | None]) -> dict[str, Tensor]:
    """``rgb`` N x 3 x H x W uint8 (channels-last memory) and ``label`` N int64; unreadable items dropped."""
    kept = [item for item in items if item is not None]
    if not kept:
        return {"rgb": torch.empty(0, 3, 0, 0, dtype=torch.uint8), "label": torch.empty(0, dtype=torch.int64)}
    images = torch.stack([image for image, _ in kept]).permute(0, 3, 1, 2)
    return {"rgb": images, "label": torch.tensor([label for _, label in kept], dtype=torch.int64)}


@dataclass(frozen=True)
class ClassificationData:
    """Where the labelled images are and how they are read.

    Args:
        train: folder of class subfolders.
        val: another such folder (the evaluation split); None: hold out ``val_fraction`` of ``train``.
        resize, crop: shorter side, then a ``crop`` square (random + flip for training, centred for
            evaluation and for cached features).
        max_train_images, max_val_images: class-balanced subsets for quick runs (None: all).
    """

    train: str
    val: str | None = None
    val_fraction: float = 0.1
    resize: int = 256
    crop: int = 224
    batch_size: int = 64
    num_workers: int = 2
    max_train_images: int | None = None
    max_val_images: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}")
        for key in ("resize", "crop", "batch_size"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"data.{key} must be >= 1, got {getattr(self, key)}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")

    def splits(self) -> tuple[LabelledFiles, LabelledFiles]:
        """(train, val) files, subsampled as configured."""
        train = labelled_folder(self.train)
        if self.val is None:
            train, val = split_labelled(train, self.val_fraction, self.seed)
        else:
            val = labelled_folder(self.val, train.classes)
        return (
            subsample(train, self.max_train_images, self.seed),
            subsample(val, self.max_val_images, self.seed),
        )

    def loader(self, data: LabelledFiles, train: bool, shuffle: bool | None = None) -> DataLoader:
        """A DataLoader: random crops if ``train``; shuffled if ``shuffle`` (default ``train``)."""
        dataset = LabelledImages(data, self.resize, self.crop, train=train, seed=self.seed)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train if shuffle is None else shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_labelled,
            persistent_workers=self.num_workers > 0,
            drop_last=train and len(dataset) > self.batch_size,  # BatchNorm needs 2+ items per batch
        )
