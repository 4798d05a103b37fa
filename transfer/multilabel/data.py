"""Multi-label data: every image's set of classes, from VOC annotations or any COCO instances JSON.

Images and objects are read by the detection readers (:mod:`transfer.detection.data`: COCO JSON with
a seeded split, a split file or a separate val JSON; VOC through torchvision's ``VOCDetection`` with
download disabled), so a COCO split here is the detection task's split of the same JSON.

Targets follow VOC's classification ground truth (the devkit's ``<class>_<set>.txt`` files, which
philkr/voc-classification ``src/data.py`` reads): 1 when an image has an object of the class that is
not ``difficult``, :data:`~.metrics.IGNORED` when all its objects of the class are difficult (VOC's
0), 0 when it has none. COCO crowd regions count as VOC's difficult objects.

Crops follow the protocol's data layer (philkr/voc-classification ``src/train_cls.py``:
``crop_size`` 227, ``min_scale`` 0.5, ``max_scale`` 2.0, ``mirror``): the image is scaled by a
factor drawn uniformly in [``min_scale``, ``max_scale``], then a random ``crop`` square is cut and
mirrored with probability 1/2. The test images go through the same random transformation, several
times (``eval_crops``), and their scores are averaged. Here the factor scales the image's shorter
side (the stored one, or ``resize``), raised where needed so that the crop fits (no padding).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

from selfsup_color.data.dataset import UnreadableImageWarning
from selfsup_color.data.decode import read_crop

from ..common import AnnotatedImages, check_positive
from ..detection.data import Annotation, ImageRecord
from .metrics import IGNORED


def image_labels(objects: Sequence[Annotation], num_classes: int) -> Tensor:
    """K int8 targets of an image's objects (labels 1..K): 1 present, ``IGNORED`` only ignored ones, 0."""
    target = torch.zeros(num_classes, dtype=torch.int8)
    for ignored_pass in (True, False):  # present (non-ignored) objects overwrite ignored ones
        for obj in objects:
            if obj.ignored == ignored_pass:
                target[obj.label - 1] = IGNORED if ignored_pass else 1
    return target


@dataclass(frozen=True)
class MultilabelDataConfig(AnnotatedImages):
    """Where the images and their objects are (:class:`~transfer.common.AnnotatedImages`; a COCO split is
    detection's), and how they are cropped.

    Args:
        crop: side of the square crops (the protocol's 227).
        resize: the shorter side that the scale factor multiplies (None: the stored image's).
        min_scale, max_scale: range of the random scale factor (the protocol's 0.5 and 2.0).
        eval_crops: random crops per evaluation image, scores averaged (the protocol reports 1 and 10).
    """

    crop: int = 227
    resize: int | None = None
    min_scale: float = 0.5
    max_scale: float = 2.0
    eval_crops: int = 10
    batch_size: int = 16
    num_workers: int = 4
    seed: int = 0
    """Seeds the crops: training ones per epoch, evaluation ones once for all."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("data.resize", self.resize, allow_none=True)
        for key in ("crop", "eval_crops", "batch_size"):
            check_positive(f"data.{key}", getattr(self, key))
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(
                f"data.min_scale and data.max_scale must satisfy 0 < min <= max, "
                f"got {self.min_scale}, {self.max_scale}"
            )
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"data.num_workers must be a non-negative integer, got {self.num_workers!r}")


class MultilabelImages(Dataset):
    """``(crops, target, index)`` items: one crop (training) or ``crops`` of them stacked (evaluation).

    Args:
        records: the images and their objects.
        num_classes: K (labels 1..K).
        crop, resize, min_scale, max_scale: the random transformation (see the module docstring).
        crops: None for training (one crop per item, new each epoch: :meth:`set_epoch`); an integer
            for evaluation (that many crops per item, the same in every epoch).
        seed: seeds every crop: item ``i`` of epoch ``e`` uses ``random.Random(f"{seed}:{e}:{i}")``,
            evaluation crop ``c`` ``random.Random(f"{seed}:eval:{i}:{c}")``.

    An unreadable file gives None (dropped by :func:`collate_multilabel`) with a warning.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        num_classes: int,
        crop: int,
        resize: int | None = None,
        min_scale: float = 0.5,
        max_scale: float = 2.0,
        crops: int | None = None,
        seed: int = 0,
    ) -> None:
        self.records = list(records)
        self.num_classes = num_classes
        self.crop, self.resize, self.scales = crop, resize, (min_scale, max_scale)
        self.crops, self.seed = crops, seed
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s training crops from now on (workers included)."""
        self._epoch.fill_(epoch)

    def shorter_side(self, record: ImageRecord, rng: random.Random) -> int:
        """The scaled shorter side of one draw: factor in [min, max] times the base, at least ``crop``."""
        base = self.resize or min(record.width, record.height)
        return max(self.crop, round(rng.uniform(*self.scales) * base))

    def read(self, record: ImageRecord, rng: random.Random) -> Tensor:
        """One random crop x crop x 3 uint8 crop (scaled, placed and mirrored by ``rng``)."""
        return read_crop(record.path, self.shorter_side(record, rng), self.crop, rng)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int] | None:
        record = self.records[index]
        try:
            if self.crops is None:
                image = self.read(record, random.Random(f"{self.seed}:{int(self._epoch)}:{index}"))
            else:
                rngs = [random.Random(f"{self.seed}:eval:{index}:{c}") for c in range(self.crops)]
                image = torch.stack([self.read(record, rng) for rng in rngs])
        except Exception as error:  # one bad file must not end a long run
            warnings.warn(
                f"skipping unreadable image {record.path}: {type(error).__name__}: {error}",
                UnreadableImageWarning,
                stacklevel=2,
            )
            return None
        return image, image_labels(record.objects, self.num_classes), index


def collate_multilabel(items: Sequence[tuple[Tensor, Tensor, int] | None]) -> dict[str, Tensor]:
    """``rgb`` (N x 3 x S x S, or N x crops x 3 x S x S) uint8, ``target`` N x K int8, ``index`` N."""
    kept = [item for item in items if item is not None]
    if not kept:
        empty = torch.empty(0, 3, 0, 0, dtype=torch.uint8)
        return {"rgb": empty, "target": torch.empty(0, 0, dtype=torch.int8), "index": torch.empty(0).long()}
    return {
        "rgb": torch.stack([image for image, _, _ in kept]).movedim(-1, -3),
        "target": torch.stack([target for _, target, _ in kept]),
        "index": torch.tensor([index for _, _, index in kept], dtype=torch.int64),
    }
