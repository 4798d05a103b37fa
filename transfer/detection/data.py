"""Detection data: COCO-format JSON or Pascal VOC folders, as (uint8 image, Faster R-CNN target) pairs.

Every item is ``(image, target)``: ``image`` a 3 x H x W uint8 RGB tensor resized so that its shorter
side is ``min_size`` and its longer at most ``max_size``; ``target`` holds ``boxes`` (float xyxy in
the resized image's pixels), ``labels`` (int64, 1..K; 0 is the background) and ``image_id`` (int).

Training sets drop the boxes detection ignores (COCO crowd regions, VOC ``difficult`` objects) and
degenerate boxes. Evaluation sets can keep the ignored ones (``keep_ignored=True``) flagged in
``target["iscrowd"]``, which the COCO evaluation treats as regions that neither count as misses nor
make detections false positives (VOC's rule for ``difficult``).

Images are read by :func:`~selfsup_color.data.decode.load_rgb` in their stored grid (no EXIF rotation):
annotations refer to the stored pixels.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from selfsup_color.data.decode import load_rgb
from selfsup_color.data.splits import seeded_split
from selfsup_color.data.splits import write_split as write_split  # re-exported for run.py

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
"""The 20 Pascal VOC classes; label ``i + 1`` is ``VOC_CLASSES[i]``."""
SPLIT_STREAM = 7
"""The random stream of :func:`split_ids` (see :func:`~selfsup_color.data.sampling.permutation`)."""

Target = dict[str, Any]


@dataclass(frozen=True)
class Annotation:
    """One object of an image in its original pixels: box xyxy, label 1..K, ignored (crowd/difficult)."""

    box: tuple[float, float, float, float]
    label: int
    ignored: bool = False


@dataclass(frozen=True)
class ImageRecord:
    """An image file and its objects."""

    image_id: int
    path: Path
    width: int
    height: int
    objects: tuple[Annotation, ...]


def resized_size(width: int, height: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(width, height) with the shorter side ``min_size``, the longer capped at ``max_size``."""
    scale = min(min_size / min(width, height), max_size / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def read_image(
    path: Path, size: tuple[int, int] | None = None, stored: tuple[int, int] | None = None
) -> Tensor:
    """The stored pixels of ``path`` as 3 x H x W uint8 RGB, resized to ``size`` (W, H) if given.

    Decoded by :func:`~selfsup_color.data.decode.load_rgb` as every image of the toolkit (alpha on
    white, 16-bit scaled), keeping the stored grid that the boxes refer to.

    ``stored``: the (W, H) the annotations give; a file of another size raises ValueError.
    """
    rgb = load_rgb(path, upright=False)
    if stored is not None and rgb.size != stored:
        raise ValueError(
            f"{path} is {rgb.size[0]} x {rgb.size[1]} but its annotations say {stored[0]} x {stored[1]}: "
            f"the boxes would not fit; fix the image file or its width/height in the annotations"
        )
    if size is not None and size != rgb.size:
        rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).contiguous()


class DetectionDataset(Dataset[tuple[Tensor, Target]]):
    """Images and their boxes, resized (and for training randomly flipped) on reading.

    Args:
        records: the images and their objects.
        num_classes: K, labels run 1..K.
        min_size, max_size: the resize (shorter side, cap on the longer side).
        flip: flip each image horizontally with probability 1/2 (training).
        keep_ignored: keep crowd/difficult objects, flagged in ``target["iscrowd"]`` (evaluation).
        class_names: K names, for the record.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        num_classes: int,
        min_size: int = 800,
        max_size: int = 1333,
        flip: bool = False,
        keep_ignored: bool = False,
        class_names: Sequence[str] = (),
    ) -> None:
        if min_size < 1 or max_size < min_size:
            raise ValueError(f"need 1 <= min_size <= max_size, got min_size={min_size}, max_size={max_size}")
        self.records = list(records)
        self.num_classes = num_classes
        self.min_size, self.max_size = min_size, max_size
        self.flip, self.keep_ignored = flip, keep_ignored
        self.class_names = tuple(class_names)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def image_ids(self) -> list[int]:
        return [r.image_id for r in self.records]

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        record = self.records[index]
        size = resized_size(record.width, record.height, self.min_size, self.max_size)
        image = read_image(record.path, size, stored=(record.width, record.height))
        target = self.target(record, size)
        if self.flip and random.random() < 0.5:
            image = image.flip(-1)
            boxes = target["boxes"]
            target["boxes"] = torch.stack(
                [size[0] - boxes[:, 2], boxes[:, 1], size[0] - boxes[:, 0], boxes[:, 3]], 1
            )
        return image, target

    def target(self, record: ImageRecord, size: tuple[int, int]) -> Target:
        """The target of ``record`` scaled to the resized ``size`` (W, H)."""
        objects = [o for o in record.objects if self.keep_ignored or not o.ignored]
        scale = torch.tensor([size[0] / record.width, size[1] / record.height] * 2)
        boxes = torch.tensor([o.box for o in objects], dtype=torch.float32).reshape(-1, 4) * scale
        target: Target = {
            "boxes": boxes,
            "labels": torch.tensor([o.label for o in objects], dtype=torch.int64),
            "image_id": record.image_id,
        }
        if self.keep_ignored:
            target["iscrowd"] = torch.tensor([int(o.ignored) for o in objects], dtype=torch.int64)
        return target


def clip_box(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[float, float, float, float] | None:
    """``box`` (xyxy) clipped to the image; None when nothing of positive area is left."""
    x1, y1 = min(max(box[0], 0.0), width), min(max(box[1], 0.0), height)
    x2, y2 = min(max(box[2], 0.0), width), min(max(box[3], 0.0), height)
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


# --- COCO ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CocoIndex:
    """A COCO instances JSON read with plain ``json``: categories (contiguous labels) and images."""

    source: Path
    category_ids: tuple[int, ...]
    class_names: tuple[str, ...]
    records: dict[int, ImageRecord]

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)


def read_coco(annotations: str | Path, images: str | Path) -> CocoIndex:
    """The images and objects of a COCO instances JSON; labels 1..K follow the sorted category ids.

    Crowd objects are kept, flagged ``ignored``; boxes of no area after clipping are dropped.
    """
    annotations, images = Path(annotations), Path(images)
    if not annotations.is_file():
        raise FileNotFoundError(f"COCO annotations {annotations} do not exist (data.annotations)")
    if not images.is_dir():
        raise FileNotFoundError(f"COCO image folder {images} does not exist (data.images)")
    data = json.loads(annotations.read_text())
    missing = [key for key in ("images", "annotations", "categories") if key not in data]
    if missing:
        raise ValueError(f"{annotations} is not a COCO instances file: no {missing}")
    categories = sorted(data["categories"], key=lambda c: c["id"])
    label_of = {c["id"]: i + 1 for i, c in enumerate(categories)}
    objects: dict[int, list[Annotation]] = {im["id"]: [] for im in data["images"]}
    sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
    for ann in data["annotations"]:
        if ann["image_id"] not in objects:
            raise ValueError(
                f"{annotations}: annotation {ann.get('id')} refers to unknown image {ann['image_id']}"
            )
        if ann["category_id"] not in label_of:
            raise ValueError(
                f"{annotations}: annotation {ann.get('id')} has unknown category {ann['category_id']}"
            )
        x, y, w, h = ann["bbox"]
        box = clip_box((x, y, x + w, y + h), *sizes[ann["image_id"]])
        if box is not None:
            ignored = bool(ann.get("iscrowd", 0) or ann.get("ignore", 0))
            objects[ann["image_id"]].append(Annotation(box, label_of[ann["category_id"]], ignored))
    records = {
        im["id"]: ImageRecord(
            im["id"], images / im["file_name"], im["width"], im["height"], tuple(objects[im["id"]])
        )
        for im in data["images"]
    }
    return CocoIndex(
        annotations, tuple(label_of), tuple(c.get("name", str(c["id"])) for c in categories), records
    )


def coco_dataset(
    index: CocoIndex, image_ids: Sequence[int] | None = None, **options: Any
) -> DetectionDataset:
    """A :class:`DetectionDataset` of ``index``'s images (all, or ``image_ids`` in that order)."""
    ids = list(index.records) if image_ids is None else list(image_ids)
    unknown = [i for i in ids if i not in index.records]
    if unknown:
        raise ValueError(f"image ids {unknown[:5]} are not in {index.source}")
    records = [index.records[i] for i in ids]
    return DetectionDataset(records, index.num_classes, class_names=index.class_names, **options)


def split_ids(ids: Sequence[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic (train, val) split of ``ids`` (sorted), val holding ``val_fraction`` (at least 1)."""
    return seeded_split(sorted(ids), val_fraction, seed, SPLIT_STREAM)


# --- Pascal VOC ----------------------------------------------------------------------------------


def voc_records(root: str | Path, year: str, image_set: str) -> list[ImageRecord]:
    """The images of VOC ``year`` ``image_set`` under ``root`` (holding ``VOCdevkit/VOC<year>``).

    Read through ``torchvision.datasets.VOCDetection(download=False)``; ``difficult`` objects are
    flagged ``ignored``. Image ids are the file names' digits (``000005`` -> 5, ``2008_000008`` ->
    2008000008).
    """
    from torchvision.datasets import VOCDetection

    folder = Path(root) / "VOCdevkit" / f"VOC{year}"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Pascal VOC folder {folder} does not exist: data.root must hold VOCdevkit/VOC{year} "
            f"(Annotations, JPEGImages, ImageSets/Main), e.g. the unpacked VOCtrainval/VOCtest tars"
        )
    try:
        voc = VOCDetection(str(root), year=year, image_set=image_set, download=False)
    except (RuntimeError, ValueError, FileNotFoundError) as error:
        raise FileNotFoundError(f"cannot read VOC{year} {image_set!r} under {folder}: {error}") from error
    pairs = zip(voc.images, voc.targets, strict=True)
    return [_voc_record(Path(image), Path(annotation)) for image, annotation in pairs]


def _voc_record(image: Path, annotation_file: Path) -> ImageRecord:
    from torchvision.datasets import VOCDetection

    if not annotation_file.is_file():
        raise FileNotFoundError(f"VOC annotation {annotation_file} does not exist (listed in ImageSets/Main)")
    ann = VOCDetection.parse_voc_xml(_parse_xml(annotation_file))["annotation"]
    width, height = int(ann["size"]["width"]), int(ann["size"]["height"])
    objects = ann.get("object", [])
    objects = objects if isinstance(objects, list) else [objects]
    found = []
    for obj in objects:
        if obj["name"] not in VOC_CLASSES:
            raise ValueError(f"{annotation_file}: unknown VOC class {obj['name']!r}")
        b = obj["bndbox"]
        # VOC boxes are 1-based inclusive pixel indices: [xmin - 1, xmax) in 0-based continuous coords
        box = clip_box(
            (float(b["xmin"]) - 1, float(b["ymin"]) - 1, float(b["xmax"]), float(b["ymax"])), width, height
        )
        if box is not None:
            ignored = bool(int(obj.get("difficult", 0)))
            found.append(Annotation(box, VOC_CLASSES.index(obj["name"]) + 1, ignored))
    image_id = int("".join(ch for ch in image.stem if ch.isdigit()) or "0")
    return ImageRecord(image_id, image, width, height, tuple(found))


def _parse_xml(path: Path) -> Any:
    import xml.etree.ElementTree as ElementTree

    return ElementTree.parse(path).getroot()


def voc_dataset(root: str | Path, sets: Sequence[str], **options: Any) -> DetectionDataset:
    """A :class:`DetectionDataset` of VOC image sets named ``"<year>-<image_set>"`` (``2007-trainval``)."""
    records: list[ImageRecord] = []
    for name in sets:
        year, _, image_set = name.partition("-")
        if not year or not image_set:
            raise ValueError(f"VOC set {name!r} must be '<year>-<image_set>', e.g. '2007-trainval'")
        records += voc_records(root, year, image_set)
    return DetectionDataset(records, len(VOC_CLASSES), class_names=VOC_CLASSES, **options)


def collate_detection(batch: Sequence[tuple[Tensor, Target]]) -> tuple[list[Tensor], list[Target]]:
    """Images and targets as two lists (sizes differ; the detector pads the batch itself)."""
    return [image for image, _ in batch], [target for _, target in batch]
