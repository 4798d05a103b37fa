"""Segmentation data: COCO-style mask folders and PASCAL VOC, with paired image/mask augmentation.

Every item is ``(image, mask)``: ``image`` uint8 ``3 x H x W`` RGB, ``mask`` int64 ``H x W`` holding
class indices ``0..K-1`` or :data:`IGNORE_INDEX`.

- COCO-style (:func:`coco_style`): ``images/<stem>.<ext>`` paired with ``masks/<stem>.png`` whose pixels
  are category ids, plus a classes JSON (id -> name). The ids of the table become indices ``0..K-1``
  in increasing id order; ``ignore_ids`` (default 0, "unlabeled") and ids missing from the table
  become :data:`IGNORE_INDEX`. Images without a mask are left out (and counted).
- VOC-style (:func:`voc_style`): ``torchvision.datasets.VOCSegmentation`` (21 classes, 255 = border).

Geometry (:class:`PairTransform`): training resizes the shorter side, takes a random crop (padding
when the image is smaller: image 0, mask ignore) and flips with probability 1/2; validation resizes
(optionally) and centre-crops or pads to a square. The mask is always resampled with NEAREST and
cropped/flipped exactly as the image. Images are read by :func:`~selfsup_color.data.decode.load_rgb` in
their stored grid (no EXIF rotation, as the masks).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from selfsup_color.data.crops import resized_size
from selfsup_color.data.decode import load_rgb
from selfsup_color.data.files import IMAGE_EXTENSIONS
from selfsup_color.data.splits import read_split, seeded_split
from selfsup_color.data.splits import write_split as write_split  # re-exported for run.py

IGNORE_INDEX = 255
"""Mask value of pixels that count neither in the loss nor in the metrics."""
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip
SPLIT_STREAM = 11
"""Stream of :func:`~selfsup_color.data.sampling.permutation` used for train/val splits."""


@dataclass(frozen=True)
class Pair:
    """One image file and its mask file."""

    stem: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class LabelMap:
    """Category ids -> contiguous class indices; everything else -> :data:`IGNORE_INDEX`."""

    ids: tuple[int, ...]
    names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.ids)

    def __call__(self, mask: np.ndarray) -> np.ndarray:
        """The class indices (uint8) of a mask of ids."""
        size = max(int(mask.max(initial=0)), *self.ids, 0) + 1
        lookup = np.full(size, IGNORE_INDEX, dtype=np.uint8)
        lookup[list(self.ids)] = np.arange(len(self.ids), dtype=np.uint8)
        return lookup[mask]


def identity_labels(names: Sequence[str]) -> LabelMap:
    """Masks that already hold class indices (VOC): index i is class i, 255 stays ignore."""
    return LabelMap(tuple(range(len(names))), tuple(names))


def read_classes(path: Path, ignore_ids: Sequence[int] = (0,)) -> LabelMap:
    """The :class:`LabelMap` of a classes JSON (``{"id": "name"}``), leaving out ``ignore_ids``."""
    if not path.is_file():
        raise FileNotFoundError(f"classes file {path} not found: pass a JSON mapping category id -> name")
    try:
        table = {int(key): str(name) for key, name in json.loads(path.read_text()).items()}
    except (ValueError, AttributeError) as error:
        raise ValueError(f"{path}: expected a JSON object mapping integer ids to names ({error})") from error
    ids = tuple(sorted(i for i in table if i not in set(ignore_ids)))
    if not ids:
        raise ValueError(f"{path} names no class besides the ignored ids {list(ignore_ids)}")
    if len(ids) > IGNORE_INDEX or max(ids) < 0:
        raise ValueError(f"{path}: {len(ids)} classes; at most {IGNORE_INDEX} non-negative ids fit")
    return LabelMap(ids, tuple(table[i] for i in ids))


def pair_files(images: Path, masks: Path) -> list[Pair]:
    """Images of ``images`` with a ``<stem>.png`` in ``masks``, sorted by stem; reports those left out."""
    for folder, what in ((images, "image"), (masks, "mask")):
        if not folder.is_dir():
            raise FileNotFoundError(f"{what} folder {folder} not found")
    found = {p.stem: p for p in sorted(images.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
    mask_files = {p.stem: p for p in masks.glob("*.png")}
    pairs = [Pair(stem, found[stem], mask_files[stem]) for stem in sorted(found) if stem in mask_files]
    orphans = len(mask_files) - len(pairs)
    rank_zero_info(
        f"Segmentation data {images}: {len(pairs)} images with a mask; {len(found) - len(pairs)} "
        f"without a mask left out" + (f"; {orphans} masks without an image ignored" if orphans else "")
    )
    if not pairs:
        raise ValueError(f"no image in {images} has a mask <stem>.png in {masks}")
    return pairs


def split_stems(stems: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded split of ``stems`` into (train, val), each sorted; val holds round(fraction * n) >= 1."""
    return seeded_split(sorted(stems), val_fraction, seed, SPLIT_STREAM)


def read_pair(pair: Pair, labels: LabelMap) -> tuple[Image.Image, Image.Image]:
    """The RGB image and its class-index mask (mode L), checked to have the same size."""
    image = load_rgb(pair.image, upright=False)  # the stored grid, as the mask's
    with Image.open(pair.mask) as raw:
        if raw.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(f"mask {pair.mask} has mode {raw.mode}: expected one channel of class ids")
        ids = np.asarray(raw)
    if image.size != (ids.shape[1], ids.shape[0]):
        raise ValueError(
            f"image {pair.image} is {image.size[0]}x{image.size[1]} but its mask {pair.mask} is "
            f"{ids.shape[1]}x{ids.shape[0]}"
        )
    return image, Image.fromarray(labels(ids))


def _resize(image: Image.Image, mask: Image.Image, shorter: int | None) -> tuple[Image.Image, Image.Image]:
    if shorter is None:
        return image, mask
    size = resized_size(*image.size, shorter)
    return image.resize(size, Image.Resampling.BILINEAR), mask.resize(size, Image.Resampling.NEAREST)


def _window(image: np.ndarray, fill: int, top: int, left: int, size: int) -> np.ndarray:
    """The ``size`` x ``size`` window at (top, left) of ``image`` (H x W [x C]); outside -> ``fill``.

    Offsets may be negative (the window then pads before the image as well as after).
    """
    out = np.full((size, size, *image.shape[2:]), fill, dtype=image.dtype)
    height, width = image.shape[:2]
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + size, height), min(left + size, width)
    out[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    return out


@dataclass(frozen=True)
class PairTransform:
    """Image and mask geometry, applied identically to both.

    Args:
        resize: shorter side after resizing; None keeps the stored size.
        size: side of the square output; None returns the (resized) image whole (batch size 1 then).
        train: random crop position and horizontal flip (p = 1/2); else a centred window.
    """

    resize: int | None
    size: int | None
    train: bool

    def __call__(
        self, image: Image.Image, mask: Image.Image, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        image, mask = _resize(image, mask, self.resize)
        pixels, labels = np.asarray(image), np.asarray(mask)
        if self.size is not None:
            top, left = self._offset(*labels.shape, generator)
            pixels = _window(pixels, 0, top, left, self.size)
            labels = _window(labels, IGNORE_INDEX, top, left, self.size)
        if self.train and torch.rand((), generator=generator).item() < 0.5:
            pixels, labels = pixels[:, ::-1], labels[:, ::-1]
        image_t = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
        return image_t, torch.from_numpy(labels.astype(np.int64))

    def _offset(self, height: int, width: int, generator: torch.Generator) -> tuple[int, int]:
        assert self.size is not None
        if not self.train:
            return round((height - self.size) / 2), round((width - self.size) / 2)
        # random position when the image is larger; the image's own position in the padding otherwise
        offsets = []
        for extent in (height, width):
            span = abs(extent - self.size) + 1
            shift = int(torch.randint(span, (), generator=generator))
            offsets.append(shift if extent >= self.size else -shift)
        return offsets[0], offsets[1]


class SegmentationFiles(Dataset[tuple[Tensor, Tensor]]):
    """Image/mask pairs read, mapped to class indices and transformed.

    Randomness comes from the torch generator of the loading process (seeded per DataLoader worker by
    PyTorch, and by ``seed_everything`` in the main process).
    """

    def __init__(self, pairs: Sequence[Pair], labels: LabelMap, transform: PairTransform) -> None:
        self.pairs, self.labels, self.transform = list(pairs), labels, transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, mask = read_pair(self.pairs[index], self.labels)
        return self.transform(image, mask, torch.default_generator)


@dataclass(frozen=True)
class SplitPairs:
    """The pairs of both splits and their label map."""

    train: list[Pair]
    val: list[Pair]
    labels: LabelMap


def coco_style(
    images: Path,
    masks: Path,
    classes: Path,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    split_file: Path | None = None,
    max_images: int | None = None,
    ignore_ids: Sequence[int] = (0,),
) -> SplitPairs:
    """A mask folder split into train and val: seeded (``val_fraction``, ``seed``) or from ``split_file``.

    ``max_images`` keeps the first stems (sorted) before splitting (quick runs and tests).
    """
    labels = read_classes(classes, ignore_ids)
    pairs = pair_files(images, masks)[:max_images]
    by_stem = {p.stem: p for p in pairs}
    if split_file is not None:
        train, val = ([str(s) for s in part] for part in read_split(split_file, {*map(str, by_stem)}))
    else:
        train, val = split_stems(list(by_stem), val_fraction, seed)
    return SplitPairs([by_stem[s] for s in train], [by_stem[s] for s in val], labels)


def voc_pairs(root: Path, year: str, image_set: str) -> list[Pair]:
    """The pairs of a VOC segmentation image set (``root`` holds ``VOCdevkit/VOC<year>``)."""
    from torchvision.datasets import VOCSegmentation

    base = root / "VOCdevkit" / f"VOC{year}"
    hint = f"expected {base}/{{JPEGImages,SegmentationClass,ImageSets/Segmentation/{image_set}.txt}}"
    try:
        voc = VOCSegmentation(str(root), year=year, image_set=image_set, download=False)
    except (RuntimeError, FileNotFoundError) as error:
        raise FileNotFoundError(f"PASCAL VOC {year} '{image_set}' not found under {root}: {hint}") from error
    pairs = [Pair(Path(i).stem, Path(i), Path(m)) for i, m in zip(voc.images, voc.masks, strict=True)]
    missing = [p for p in pairs if not (p.image.is_file() and p.mask.is_file())]
    if missing:
        raise FileNotFoundError(
            f"VOC {year} '{image_set}': {len(missing)} of {len(pairs)} listed items lack their image or "
            f"mask, e.g. {missing[0].image} / {missing[0].mask}; {hint}"
        )
    if not pairs:
        raise ValueError(f"VOC {year} '{image_set}' under {root} lists no images")
    return pairs


def voc_style(
    root: Path,
    year: str = "2012",
    train_set: str = "train",
    val_set: str = "val",
    max_images: int | None = None,
) -> SplitPairs:
    """PASCAL VOC's own image sets as train and val (21 classes, 255 = ignore)."""
    train = voc_pairs(root, year, train_set)[:max_images]
    val = voc_pairs(root, year, val_set)[:max_images]
    return SplitPairs(train, val, identity_labels(VOC_CLASSES))
