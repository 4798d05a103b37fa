"""One segmentation transfer run: settings (:class:`SegmentationConfig`) and :func:`run_segmentation`."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch import LightningDataModule, seed_everything
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from torch import distributed as dist
from torch.utils.data import DataLoader

from selfsup_color.data.sampling import seed_worker

from ..common import OptimConfig, check_data_source, check_positive
from ..encoder import EncoderConfig, build_encoder
from ..report import Result
from ..trainer import TrainerSpec
from .data import PairTransform, SegmentationFiles, SplitPairs, coco_style, voc_style, write_split
from .examples import segmentation_examples
from .model import SegmentationNet
from .module import SegmentationModule


@dataclass(frozen=True)
class SegmentationDataConfig:
    """Where the images and masks are and how they are cut.

    Args:
        format: ``"coco"`` (image + mask folders, classes JSON) or ``"voc"`` (PASCAL VOC).
        root: coco: the folder holding ``images``, ``masks`` and ``classes``; voc: the folder holding
            ``VOCdevkit/VOC<voc_year>``.
        images, masks, classes: coco: paths relative to ``root``.
        val_fraction, split_seed: coco: seeded split; ``split_file``: coco: a JSON ``{"train": [stems],
            "val": [stems]}`` instead. The split used is written to ``<out_dir>/split.json``.
        voc_year, train_set, val_set: voc image sets.
        max_images: keep the first N images (per VOC image set), for quick runs.
        resize, crop: training: shorter side, then a random ``crop`` square (padded if smaller) + flip.
        val_resize, val_size: validation: shorter side (None: as stored), then a centred ``val_size``
            square, cropped or padded with ignored pixels (None: whole images, needs val_batch_size 1).
    """

    format: Literal["coco", "voc"] = "coco"
    root: str = ""
    images: str = "images"
    masks: str = "masks"
    classes: str = "masks_classes.json"
    val_fraction: float = 0.2
    split_seed: int = 0
    split_file: str | None = None
    voc_year: str = "2012"
    train_set: str = "train"
    val_set: str = "val"
    max_images: int | None = None
    resize: int | None = 256
    crop: int = 224
    val_resize: int | None = 256
    val_size: int | None = 256
    batch_size: int = 16
    val_batch_size: int | None = None
    num_workers: int = 4

    def __post_init__(self) -> None:
        check_data_source(self.format, self.root, self.val_fraction)
        for key in ("resize", "val_resize", "val_size", "max_images", "val_batch_size"):
            check_positive(f"data.{key}", getattr(self, key), allow_none=True)
        for key in ("crop", "batch_size"):
            check_positive(f"data.{key}", getattr(self, key))
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"data.num_workers must be a non-negative integer, got {self.num_workers!r}")
        if self.val_size is None and (self.val_batch_size or self.batch_size) != 1:
            raise ValueError("data.val_size=None (whole images) needs data.val_batch_size=1")


@dataclass(frozen=True)
class SegmentationModelConfig:
    """The head and how much of the encoder trains.

    Args:
        taps: encoder taps fed to the head; None: the deepest tap of each stride.
        fusion: ``"sum"`` (FCN-8s-like skips) or ``"concat"`` (hypercolumn).
        width: channels of each tap's projection.
        dropout: before the classifier.
        freeze_at: ``"all"`` (frozen encoder), a tap (frozen up to it) or None (fine-tune everything).
    """

    taps: list[str] | None = None
    fusion: Literal["sum", "concat"] = "sum"
    width: int = 256
    dropout: float = 0.1
    freeze_at: str | None = "all"

    def __post_init__(self) -> None:
        if self.fusion not in ("sum", "concat"):
            raise ValueError(f"model.fusion must be 'sum' or 'concat', got {self.fusion!r}")
        if self.taps is not None and (not self.taps or not all(isinstance(t, str) for t in self.taps)):
            raise ValueError(f"model.taps must be None or a non-empty list of tap names, got {self.taps!r}")
        check_positive("model.width", self.width)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class SegmentationConfig:
    """The ``segmentation`` section: the head (``model``) and its optimiser (``optim``)."""

    model: SegmentationModelConfig = field(default_factory=SegmentationModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


def load_pairs(config: SegmentationDataConfig) -> SplitPairs:
    """The train/val pairs and label map the settings describe."""
    root = Path(config.root)
    if config.format == "voc":
        return voc_style(root, config.voc_year, config.train_set, config.val_set, config.max_images)
    return coco_style(
        root / config.images,
        root / config.masks,
        root / config.classes,
        val_fraction=config.val_fraction,
        seed=config.split_seed,
        split_file=Path(config.split_file) if config.split_file else None,
        max_images=config.max_images,
    )


class SegmentationData(LightningDataModule):
    """Loaders of a :class:`SplitPairs`; validation visits each image exactly once under DDP."""

    def __init__(self, pairs: SplitPairs, config: SegmentationDataConfig) -> None:
        super().__init__()
        self.pairs, self.config = pairs, config

    def train_dataloader(self) -> DataLoader:
        c = self.config
        files = SegmentationFiles(self.pairs.train, self.pairs.labels, PairTransform(c.resize, c.crop, True))
        return DataLoader(
            files,
            batch_size=c.batch_size,
            shuffle=True,
            drop_last=len(files) > c.batch_size,
            num_workers=c.num_workers,
            worker_init_fn=seed_worker,
            persistent_workers=c.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        c = self.config
        files = SegmentationFiles(
            self.pairs.val, self.pairs.labels, PairTransform(c.val_resize, c.val_size, False)
        )
        sampler = UnrepeatedDistributedSampler(files, shuffle=False) if dist.is_initialized() else None
        return DataLoader(
            files, batch_size=c.val_batch_size or c.batch_size, sampler=sampler, num_workers=c.num_workers
        )


def run_segmentation(
    encoder: EncoderConfig,
    data: SegmentationDataConfig,
    config: SegmentationConfig,
    trainer: TrainerSpec,
    out_dir: Path,
    dataset_name: str,
) -> Result:
    """Train the head (and the unfrozen encoder) on the train split, validate, return the scores.

    Writes ``split.json`` (the image stems used) and ``scores.json`` (with per-class IoU) to ``out_dir``.
    """
    out_dir = Path(out_dir)
    seed_everything(trainer.seed, workers=True)
    pairs = load_pairs(data)
    _record_split(out_dir / "split.json", pairs)
    net = SegmentationNet(
        build_encoder(encoder, freeze_at=config.model.freeze_at),
        pairs.labels.num_classes,
        config.model.taps,
        config.model.fusion,
        config.model.width,
        config.model.dropout,
    )
    module = SegmentationModule(net, pairs.labels.num_classes, config.optim)
    datamodule = SegmentationData(pairs, data)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"segmentation-{dataset_name}-{encoder.label}").strip("_")
    fitter = trainer.build(out_dir, name)
    start = time.perf_counter()
    fitter.fit(module, datamodule=datamodule)
    fitter.validate(module, datamodule=datamodule, verbose=False)
    scores = module.last_scores
    settings = {
        "data": asdict(data),
        "segmentation": asdict(config),
        "encoder": asdict(encoder),
        "trainer": trainer.settings(),
        "taps": list(net.taps),
        "num_classes": pairs.labels.num_classes,
        "train_images": len(pairs.train),
        "val_images": len(pairs.val),
        "val_pixels": scores["pixels"],
        "seconds": round(time.perf_counter() - start, 1),
    }
    _record_scores(out_dir / "scores.json", scores, pairs.labels.names)
    rank_zero_info(f"Segmentation {name}: mIoU {scores['miou']:.4f}, pixel acc {scores['pixel_acc']:.4f}")
    metrics = {"head": {"miou": scores["miou"], "pixel_acc": scores["pixel_acc"]}}
    examples = segmentation_examples(
        net, datamodule.val_dataloader().dataset, out_dir / "examples", fitter.logger
    )
    return Result("segmentation", dataset_name, encoder.label, metrics, settings, [str(p) for p in examples])


@rank_zero_only
def _record_split(path: Path, pairs: SplitPairs) -> None:
    write_split(path, [p.stem for p in pairs.train], [p.stem for p in pairs.val])


@rank_zero_only
def _record_scores(path: Path, scores: dict[str, Any], names: tuple[str, ...]) -> None:
    per_class = dict(zip(names, scores["class_iou"], strict=True))
    path.write_text(json.dumps({**scores, "class_iou": per_class}, indent=1))
