"""One detection transfer run: settings (:class:`DetectionConfig`) and :func:`run_detection`."""

from __future__ import annotations

import inspect
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch import seed_everything
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader
from torchvision.models.detection import FasterRCNN

from selfsup_color.data.sampling import seed_worker
from selfsup_color.data.splits import read_split

from ..common import AnnotatedImages, OptimConfig, check_positive
from ..encoder import EncoderConfig, build_encoder
from ..report import Result
from ..trainer import TrainerSpec
from .data import (
    DetectionDataset,
    coco_dataset,
    collate_detection,
    read_coco,
    split_ids,
    voc_dataset,
)
from .examples import detection_examples
from .model import HEADS, build_detector
from .module import DetectionModule

RCNN_OPTIONS = frozenset(inspect.signature(FasterRCNN.__init__).parameters).difference(
    {"self", "backbone", "num_classes", "min_size", "max_size", "image_mean", "image_std", "kwargs"}
    | {"rpn_anchor_generator", "rpn_head", "box_roi_pool", "box_head", "box_predictor", "box_score_thresh"}
)
"""The ``FasterRCNN`` arguments that ``model.rcnn_options`` may set (the others are the head's)."""


@dataclass(frozen=True)
class DetectionDataConfig(AnnotatedImages):
    """Where the images and boxes are (:class:`~transfer.common.AnnotatedImages`), how they are resized.

    Args:
        min_size, max_size: resize (shorter side; cap on the longer side), in the loader and the model.
        flip: random horizontal flips for training.
    """

    min_size: int = 800
    max_size: int = 1333
    flip: bool = True
    batch_size: int = 2
    num_workers: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("min_size", "max_size", "batch_size"):
            check_positive(f"data.{key}", getattr(self, key))
        if self.max_size < self.min_size:
            raise ValueError(f"data.max_size ({self.max_size}) must be >= data.min_size ({self.min_size})")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"data.num_workers must be a non-negative integer, got {self.num_workers!r}")


@dataclass(frozen=True)
class DetectionModelConfig:
    """The detection head and how much of the encoder trains.

    Args:
        head: ``"fpn"`` (feature pyramid over several taps) or ``"c4"`` (one tap, MLP box head).
        taps: the taps the head reads; None: the defaults of :func:`~.model.default_taps`.
        freeze_at: ``"all"`` (frozen encoder), a tap (frozen up to it) or None (fine-tune everything).
        fpn_channels: FPN width.
        norm_eval: keep the encoder's BatchNorm statistics frozen while training.
        warmup_steps: linear learning-rate warm-up from 0.001x over these steps (0: none).
        score_thresh: detections scoring below are dropped before mAP (torchvision's 0.05; lower
            values can only raise COCO AP, useful for weak short runs).
        rcnn_options: further ``FasterRCNN`` arguments, e.g. ``box_batch_size_per_image`` (RoIs per
            image, 512), ``rpn_post_nms_top_n_train`` (2000), ``rpn_post_nms_top_n_test`` (1000).
    """

    head: Literal["fpn", "c4"] = "fpn"
    taps: list[str] | None = None
    freeze_at: str | None = "all"
    fpn_channels: int = 256
    norm_eval: bool = True
    warmup_steps: int = 0
    score_thresh: float = 0.05
    rcnn_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"model.head must be one of {HEADS}, got {self.head!r}")
        if self.taps is not None and (not self.taps or not all(isinstance(t, str) for t in self.taps)):
            raise ValueError(f"model.taps must be None or a non-empty list of tap names, got {self.taps!r}")
        if self.head == "c4" and self.taps is not None and len(self.taps) != 1:
            raise ValueError(f"model.taps: the c4 head reads one tap, got {self.taps}")
        check_positive("model.fpn_channels", self.fpn_channels)
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"model.warmup_steps must be a non-negative integer, got {self.warmup_steps!r}")
        if not 0.0 <= self.score_thresh < 1.0:
            raise ValueError(f"model.score_thresh must be in [0, 1), got {self.score_thresh}")
        unknown = sorted(set(self.rcnn_options).difference(RCNN_OPTIONS))
        if unknown:
            raise ValueError(f"model.rcnn_options: unknown key(s) {unknown}; valid: {sorted(RCNN_OPTIONS)}")


@dataclass(frozen=True)
class DetectionConfig:
    """The ``detection`` section: the head (``model``) and its optimiser (``optim``)."""

    model: DetectionModelConfig = field(default_factory=DetectionModelConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.02, weight_decay=1e-4))


def load_datasets(config: DetectionDataConfig) -> tuple[DetectionDataset, DetectionDataset]:
    """(train, val): train drops crowd/difficult boxes and flips; val keeps them as ignored regions."""
    size = {"min_size": config.min_size, "max_size": config.max_size}
    train_options = {**size, "flip": config.flip}
    val_options = {**size, "keep_ignored": True}
    root = Path(config.root)
    if config.format == "voc":
        train = voc_dataset(root, config.train_sets, **train_options)
        val = voc_dataset(root, [config.val_set], **val_options)
    else:
        index = read_coco(root / config.annotations, root / config.images)
        if config.val_annotations is not None and config.val_images is not None:
            val_index = read_coco(root / config.val_annotations, root / config.val_images)
            if val_index.category_ids != index.category_ids:
                raise ValueError(f"{val_index.source} and {index.source} have different categories")
            train = coco_dataset(index, sorted(index.records), **train_options)
            val = coco_dataset(val_index, sorted(val_index.records), **val_options)
        else:
            train_ids, val_ids = (
                [[int(i) for i in part] for part in read_split(config.split_file, index.records)]
                if config.split_file
                else split_ids(list(index.records), config.val_fraction, config.split_seed)
            )
            train = coco_dataset(index, train_ids, **train_options)
            val = coco_dataset(index, val_ids, **val_options)
    train.records = train.records[: config.max_train_images]
    val.records = val.records[: config.max_val_images]
    if not train.records or not val.records:
        raise ValueError(f"empty split: {len(train)} train and {len(val)} val images under {root}")
    return train, val


def make_loader(dataset: DetectionDataset, config: DetectionDataConfig, train: bool) -> DataLoader:
    """Shuffled (train) or ordered batches of (images, targets) lists; Lightning adds DDP samplers."""
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=train,
        num_workers=config.num_workers,
        collate_fn=collate_detection,
        worker_init_fn=seed_worker,
        persistent_workers=config.num_workers > 0,
    )


def run_detection(
    encoder: EncoderConfig,
    data: DetectionDataConfig,
    config: DetectionConfig,
    trainer: TrainerSpec,
    out_dir: Path,
    dataset_name: str,
) -> Result:
    """Train Faster R-CNN on the encoder, validate once at the end, return box mAP (``metrics["head"]``).

    Writes ``split.json`` (the image ids used) to ``out_dir``.
    """
    out_dir = Path(out_dir)
    seed_everything(trainer.seed, workers=True, verbose=False)
    train, val = load_datasets(data)
    data.record_split(out_dir / "split.json", train.image_ids, val.image_ids)
    m = config.model
    detector = build_detector(
        build_encoder(encoder, freeze_at=m.freeze_at),
        train.num_classes,
        head=m.head,
        taps=m.taps,
        min_size=data.min_size,
        max_size=data.max_size,
        fpn_channels=m.fpn_channels,
        norm_eval=m.norm_eval,
        box_score_thresh=m.score_thresh,
        **m.rcnn_options,
    )
    module = DetectionModule(detector, config.optim, warmup_steps=m.warmup_steps)
    name = f"detection-{dataset_name}-{encoder.label}".replace(" ", "_")
    fitter = trainer.build(out_dir, name, num_sanity_val_steps=0)
    start = time.perf_counter()
    fitter.fit(module, train_dataloaders=make_loader(train, data, train=True))
    scores = fitter.validate(module, dataloaders=make_loader(val, data, train=False), verbose=False)[0]
    metrics = {"head": {"map": float(scores["val/map"]), "map_50": float(scores["val/map_50"])}}
    settings = {
        "data": asdict(data),
        "detection": asdict(config),
        "encoder": asdict(encoder),
        "trainer": trainer.settings(),
        "taps": list(detector.backbone.taps),
        "levels": list(detector.backbone.level_names),
        "num_classes": train.num_classes,
        "train_images": len(train),
        "val_images": len(val),
        "steps": fitter.global_step,
        "seconds": round(time.perf_counter() - start, 1),
    }
    rank_zero_info(
        f"Detection {name}: mAP {metrics['head']['map']:.4f}, mAP@0.5 {metrics['head']['map_50']:.4f}"
    )
    examples = detection_examples(detector, val, out_dir / "examples", fitter.logger)
    return Result("detection", dataset_name, encoder.label, metrics, settings, [str(p) for p in examples])
