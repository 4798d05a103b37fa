"""One multi-label run: settings (:class:`MultilabelConfig`) and :func:`run_multilabel`.

The protocol is Krähenbühl's VOC classification test (philkr/voc-classification ``src/train_cls.py``,
run by richzhang/colorization ``feature_learning_tests/run_classification_test_conv1.sh``):
``--train-from`` picks the first layer that trains. The paper's three settings are ``freeze_at``
``fc7`` (only the classifier trains), ``pool5`` (fc6, fc7 and the classifier) and None (all layers).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from selfsup_color.data.sampling import seed_worker

from ..classification.probes import DEFAULT_POOL_DIMS, pool_sizes, tap_shapes
from ..classification.run import trainer_overrides
from ..common import OptimConfig, check_positive
from ..detection.data import ImageRecord
from ..detection.run import DetectionDataConfig, load_datasets
from ..encoder import EncoderConfig, build_encoder
from ..report import Result
from ..trainer import TrainerSpec
from .data import MultilabelDataConfig, MultilabelImages, collate_multilabel
from .module import MultilabelFineTune


@dataclass(frozen=True)
class MultilabelConfig:
    """The ``multilabel`` section: what trains, the head, and the solver.

    Args:
        freeze_at: freeze the encoder up to and including this tap (None: everything trains).
        tap: the tap the head reads (None: the deepest).
        pool_dims: the tap is average-pooled to about this many values (as the linear probes).
        dropout: before the classifier (the protocol's ``drop7``, 0.5).
        batchnorm: BatchNorm without affine parameters before the classifier (not in the protocol).
        bias_lr_mult: learning-rate multiplier of biases (the protocol's 2).
        schedule: ``optim.milestones`` in epochs or in optimizer steps (the protocol: every 10000
            iterations, gamma 0.5).
        max_epochs, max_steps: this training's length (None: ``trainer.max_epochs``).
        gradient_clip_val: clip the gradient norm (the protocol's ``clip_gradients`` 10).
    """

    freeze_at: str | None = None
    tap: str | None = None
    pool_dims: int = DEFAULT_POOL_DIMS
    dropout: float = 0.5
    batchnorm: bool = False
    bias_lr_mult: float = 2.0
    schedule: Literal["epoch", "step"] = "epoch"
    max_epochs: int | None = None
    max_steps: int | None = None
    gradient_clip_val: float | None = 10.0
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=0.001, momentum=0.9, weight_decay=1e-6, gamma=0.5)
    )

    def __post_init__(self) -> None:
        for key in ("max_epochs", "max_steps"):
            check_positive(f"multilabel.{key}", getattr(self, key), allow_none=True)
        check_positive("multilabel.pool_dims", self.pool_dims)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"multilabel.dropout must be in [0, 1), got {self.dropout}")
        if not self.bias_lr_mult >= 0:
            raise ValueError(f"multilabel.bias_lr_mult must be >= 0, got {self.bias_lr_mult}")
        if self.schedule not in ("epoch", "step"):
            raise ValueError(f"multilabel.schedule must be 'epoch' or 'step', got {self.schedule!r}")
        if self.gradient_clip_val is not None and not self.gradient_clip_val > 0:
            raise ValueError(
                f"multilabel.gradient_clip_val must be > 0 or None, got {self.gradient_clip_val!r}"
            )


def load_records(data: MultilabelDataConfig) -> tuple[list[ImageRecord], list[ImageRecord], tuple[str, ...]]:
    """(train, val) images with their objects, and the class names: detection's readers and split."""
    train, val = load_datasets(DetectionDataConfig(**data.source(), batch_size=1, num_workers=0))
    return train.records, val.records, train.class_names


def make_loader(dataset: MultilabelImages, data: MultilabelDataConfig, train: bool) -> DataLoader:
    """Shuffled training batches (the last partial one dropped: BatchNorm) or ordered evaluation ones."""
    return DataLoader(
        dataset,
        batch_size=data.batch_size,
        shuffle=train,
        drop_last=train and len(dataset) > data.batch_size,
        num_workers=data.num_workers,
        collate_fn=collate_multilabel,
        worker_init_fn=seed_worker,
        persistent_workers=data.num_workers > 0,
    )


def run_multilabel(
    encoder: EncoderConfig,
    data: MultilabelDataConfig,
    config: MultilabelConfig,
    trainer: TrainerSpec,
    out_dir: Path,
    dataset_name: str,
) -> Result:
    """Fine-tune past ``freeze_at`` with a multi-label head on ``tap``; mAP over classes at the end.

    Writes ``split.json`` (the image ids of each split) to ``out_dir``.
    """
    out_dir = Path(out_dir)
    train, val, classes = load_records(data)
    data.record_split(out_dir / "split.json", [r.image_id for r in train], [r.image_id for r in val])
    name = f"multilabel-{dataset_name}-{encoder.label}".replace(" ", "_")
    overrides = trainer_overrides(config.max_epochs, config.max_steps, config.gradient_clip_val)
    fitter = trainer.build(out_dir, name, num_sanity_val_steps=0, **overrides)  # seeds: the head starts alike
    net = build_encoder(encoder, config.freeze_at)
    tap = config.tap or net.tap_names[-1]
    net.freeze_beyond([tap])  # deeper blocks feed no head: they would only decay
    pool = pool_sizes(tap_shapes(net, [tap], data.crop), config.pool_dims)[tap]
    module = MultilabelFineTune(
        net,
        tap,
        pool,
        len(classes),
        config.optim,
        config.dropout,
        config.batchnorm,
        config.bias_lr_mult,
        config.schedule,
    )
    crops = {
        "crop": data.crop,
        "resize": data.resize,
        "min_scale": data.min_scale,
        "max_scale": data.max_scale,
    }
    train_set = MultilabelImages(train, len(classes), **crops, seed=data.seed)
    val_set = MultilabelImages(val, len(classes), **crops, crops=data.eval_crops, seed=data.seed)
    start = time.perf_counter()
    fitter.fit(module, train_dataloaders=make_loader(train_set, data, train=True))
    scores = fitter.validate(module, dataloaders=make_loader(val_set, data, train=False), verbose=False)[0]
    metrics = {tap: {name: float(scores[f"val/{tap}/{name}"]) for name in ("map", "map_1crop")}}
    settings = {
        "data": asdict(data),
        "multilabel": asdict(config),
        "encoder": asdict(encoder),
        "trainer": trainer.settings(),
        "tap": tap,
        "pool": pool,
        "classes": list(classes),
        "scored_classes": module.scored_classes,
        "train_images": len(train),
        "val_images": len(val),
        "steps": fitter.global_step,
        "seconds": round(time.perf_counter() - start, 1),
    }
    rank_zero_info(
        f"Multi-label {name}: mAP {metrics[tap]['map']:.4f} ({data.eval_crops} crops), "
        f"{metrics[tap]['map_1crop']:.4f} (1 crop) over {module.scored_classes} classes"
    )
    return Result("multilabel", dataset_name, encoder.label, metrics, settings)
