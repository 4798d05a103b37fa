"""Classification evaluations end to end: linear probes, kNN, fine-tuning, and the supervised baseline.

Each ``run_*`` takes an :class:`~transfer.encoder.EncoderConfig` and returns a
:class:`~transfer.report.Result` with one row per tap (per layer, as in the paper's tables).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch

from ..common import OptimConfig, check_positive
from ..encoder import EncoderConfig, LightnessEncoder, build_encoder, read_weights, save_weights
from ..report import Result
from ..trainer import TrainerSpec
from .cache import CACHE_MODES, CacheMode, cached_loader, extract_features, resolve_mode, shard
from .data import ClassificationData, LabelledFiles
from .finetune import FineTune
from .knn import DEFAULT_K, DEFAULT_TEMPERATURE, knn_probe
from .probes import DEFAULT_POOL_DIMS, LinearProbes, pool_sizes, tap_shapes


@dataclass(frozen=True)
class ProbeConfig:
    """Linear probes: which taps (None: all), pooled size, caching, and SGD."""

    taps: list[str] | None = None
    pool_dims: int = DEFAULT_POOL_DIMS
    pool_sizes: dict[str, int] | None = None
    """Pooling side per tap (``s x s`` cells), overriding ``pool_dims`` for those taps."""
    cache: CacheMode = "auto"
    cache_dir: str | None = None
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.01, momentum=0.9))

    def __post_init__(self) -> None:
        if self.cache not in CACHE_MODES:
            raise ValueError(f"probe.cache must be one of {CACHE_MODES}, got {self.cache!r}")
        if self.pool_dims < 1:
            raise ValueError(f"probe.pool_dims must be >= 1, got {self.pool_dims}")


@dataclass(frozen=True)
class KNNConfig:
    """kNN probe: taps (None: all), pooled size, k and the vote temperature."""

    taps: list[str] | None = None
    pool_dims: int = DEFAULT_POOL_DIMS
    k: int = DEFAULT_K
    temperature: float = DEFAULT_TEMPERATURE

    def __post_init__(self) -> None:
        if self.k < 1 or self.temperature <= 0:
            raise ValueError(f"knn.k must be >= 1 and knn.temperature > 0, got {self.k}, {self.temperature}")


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning: freeze up to ``freeze_at`` (None: nothing), classify from ``tap`` (None: deepest)."""

    freeze_at: str | None = None
    tap: str | None = None
    pool_dims: int = DEFAULT_POOL_DIMS
    max_epochs: int | None = None
    """Epochs of this training (None: ``trainer.max_epochs``); the supervised baseline uses it too."""
    max_steps: int | None = None
    """Optimizer steps instead of epochs, e.g. a pretraining's budget for the supervised baseline."""
    batch_size: int | None = None
    """Batch size of this training (None: ``data.batch_size``)."""
    train_images: Literal["probe", "all"] = "probe"
    """Train on the probes' images (``data.max_train_images``) or on every image of ``data.train``."""
    gradient_clip_val: float | None = None
    """Clip this training's gradient norm (not the probes'), e.g. for a network trained from scratch."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.01, weight_decay=1e-4))

    def __post_init__(self) -> None:
        for key in ("max_epochs", "max_steps", "batch_size"):
            check_positive(f"finetune.{key}", getattr(self, key), allow_none=True)
        if self.gradient_clip_val is not None and not self.gradient_clip_val > 0:
            raise ValueError(
                f"finetune.gradient_clip_val must be > 0 or None, got {self.gradient_clip_val!r}"
            )
        if self.train_images not in ("probe", "all"):
            raise ValueError(f"finetune.train_images must be 'probe' or 'all', got {self.train_images!r}")

    def data_for(self, data: ClassificationData) -> ClassificationData:
        """``data`` with this training's batch size and image set."""
        batch = {"batch_size": self.batch_size} if self.batch_size else {}
        images = {"max_train_images": None} if self.train_images == "all" else {}
        return replace(data, **batch, **images)

    def trainer_overrides(self) -> dict[str, Any]:
        """Trainer overrides of this training: its length (else the trainer's own) and clipping."""
        return trainer_overrides(self.max_epochs, self.max_steps, self.gradient_clip_val)


def trainer_overrides(
    max_epochs: int | None, max_steps: int | None, gradient_clip_val: float | None
) -> dict[str, Any]:
    """``Trainer`` overrides of one training: steps or epochs (None: the trainer's), gradient clipping."""
    clip = {} if gradient_clip_val is None else {"gradient_clip_val": gradient_clip_val}
    if max_steps:
        return {"max_steps": max_steps, "max_epochs": -1, **clip}
    return ({"max_epochs": max_epochs} if max_epochs else {}) | clip


def _device_encoder(config: EncoderConfig, freeze_at: str | None, trainer: Any) -> LightnessEncoder:
    encoder = build_encoder(config, freeze_at)
    return encoder.to(trainer.strategy.root_device)


def _result(task: str, dataset: str, label: str, metrics: dict[str, Any], settings: dict[str, Any]) -> Result:
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "val":
            rows.setdefault(parts[1], {})[parts[2]] = float(value)
    return Result(task, dataset, label, rows, settings)


def _settings(**parts: Any) -> dict[str, Any]:
    return {
        name: asdict(value) if hasattr(value, "__dataclass_fields__") else value
        for name, value in parts.items()
    }


def run_linear(
    encoder: EncoderConfig,
    data: ClassificationData,
    probe: ProbeConfig,
    trainer: TrainerSpec,
    out_dir: Path,
    dataset: str,
) -> Result:
    """Train one linear probe per tap in one pass over a frozen encoder; top-1/top-5 per tap at the end."""
    train_files, val_files = data.splits()
    # Every rank reads its own shard (``files[rank::world]``), cached or not: no sampler padding.
    run = trainer.build(
        out_dir, f"linear-{encoder.label}", use_distributed_sampler=False, num_sanity_val_steps=0
    )
    train_files = shard(train_files, run.global_rank, run.world_size, equal=True)
    val_files = shard(val_files, run.global_rank, run.world_size)
    net = _device_encoder(encoder, "all", run)
    taps = net.net.select_taps(probe.taps)
    shapes = tap_shapes(net, taps, data.crop)
    sizes = pool_sizes(shapes, probe.pool_dims, probe.pool_sizes)
    channels = {name: shape[0] for name, shape in shapes.items()}
    cache = resolve_mode(
        probe.cache, len(train_files.files), {t: channels[t] * s * s for t, s in sizes.items()}
    )
    module = LinearProbes(net, sizes, channels, len(train_files.classes), probe.optim)
    if cache == "none":
        train_loader = data.loader(train_files, train=True)
        val_loader = data.loader(val_files, train=False)
    else:
        folder = Path(probe.cache_dir or out_dir / "features") / f"rank{run.global_rank}"
        stores = {}
        for split, files in (("train", train_files), ("val", val_files)):
            loader = data.loader(files, train=False, shuffle=False)
            stores[split] = extract_features(
                net, sizes, channels, loader, len(files.files), cache, folder, split
            )
        train_loader = cached_loader(stores["train"], data.batch_size, shuffle=True, seed=trainer.seed)
        val_loader = cached_loader(stores["val"], data.batch_size, shuffle=False)
    run.fit(module, train_dataloaders=train_loader)
    metrics = run.validate(module, dataloaders=val_loader, verbose=False)[0]
    settings = _settings(
        encoder=encoder, data=data, probe=probe, trainer=trainer.settings(), cache=cache, pool=sizes
    )
    return _result("linear", dataset, encoder.label, metrics, settings)


def extract_split(
    net: LightnessEncoder,
    data: ClassificationData,
    files: LabelledFiles,
    sizes: dict[str, int],
    rank: int,
    world: int,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """This rank's pooled features (in memory) and labels of ``files`` (centre crops)."""
    channels = net.tap_channels()
    mine = shard(files, rank, world)
    loader = data.loader(mine, train=False, shuffle=False)
    store = extract_features(net, sizes, channels, loader, len(mine.files), "memory")
    return {name: torch.as_tensor(values) for name, values in store.features.items()}, store.labels


def run_knn(
    encoder: EncoderConfig, data: ClassificationData, knn: KNNConfig, device: str, dataset: str
) -> Result:
    """kNN top-1/top-5 per tap (single process: features of the whole split on ``device``)."""
    train_files, val_files = data.splits()
    net = build_encoder(encoder, "all").to(device)
    taps = net.net.select_taps(knn.taps)
    sizes = pool_sizes(tap_shapes(net, taps, data.crop), knn.pool_dims)
    bank, bank_labels = extract_split(net, data, train_files, sizes, 0, 1)
    queries, query_labels = extract_split(net, data, val_files, sizes, 0, 1)
    scores = knn_probe(
        bank, bank_labels, queries, query_labels, len(train_files.classes), knn.k, knn.temperature
    )
    return Result(
        "knn", dataset, encoder.label, scores, _settings(encoder=encoder, data=data, knn=knn, pool=sizes)
    )


def run_finetune(
    encoder: EncoderConfig,
    data: ClassificationData,
    finetune: FinetuneConfig,
    trainer: TrainerSpec,
    out_dir: Path,
    dataset: str,
    task: str = "finetune",
) -> tuple[Result, FineTune]:
    """Train the encoder past ``freeze_at`` and a classifier on ``tap``; top-1/top-5 of that tap."""
    data = finetune.data_for(data)
    train_files, val_files = data.splits()
    name = f"{task}-{encoder.label}"
    run = trainer.build(out_dir, name, num_sanity_val_steps=0, **finetune.trainer_overrides())
    net = build_encoder(encoder, finetune.freeze_at)
    tap = finetune.tap or net.tap_names[-1]
    size = pool_sizes(tap_shapes(net, [tap], data.crop), finetune.pool_dims)[tap]
    module = FineTune(net, tap, size, len(train_files.classes), finetune.optim)
    run.fit(module, train_dataloaders=data.loader(train_files, train=True))
    metrics = run.validate(module, dataloaders=data.loader(val_files, train=False), verbose=False)[0]
    settings = _settings(encoder=encoder, data=data, finetune=finetune, trainer=trainer.settings())
    return _result(task, dataset, encoder.label, metrics, settings), module


def train_supervised(
    arch_source: EncoderConfig,
    data: ClassificationData,
    finetune: FinetuneConfig,
    trainer: TrainerSpec,
    out_dir: Path,
    dataset: str,
) -> tuple[Result, EncoderConfig]:
    """The supervised baseline: ``arch_source``'s architecture trained from scratch on the labels.

    Returns its own fine-tuning result and an :class:`EncoderConfig` of the trained weights (saved
    under ``out_dir``), to be probed like any other encoder.
    """
    scratch = EncoderConfig(
        ckpt_path=arch_source.ckpt_path,
        init="random",
        arch=arch_source.arch,
        arch_options=arch_source.arch_options,
        seed=arch_source.seed,
    )
    plain = replace(finetune, freeze_at=None)
    result, module = run_finetune(scratch, data, plain, trainer, out_dir, dataset, task="supervised")
    net, (arch, options) = module.encoder.net, _architecture(scratch)
    path = out_dir / "supervised.pt"
    if getattr(module.trainer, "is_global_zero", True):
        save_weights(net, arch, options, path, source="supervised from scratch")
    if module.trainer.world_size > 1:
        module.trainer.strategy.barrier("supervised-weights")
    result.encoder = f"supervised ({arch})"
    return result, EncoderConfig(ckpt_path=str(path), init="pretrained")


def _architecture(config: EncoderConfig) -> tuple[str, dict[str, Any]]:
    """The architecture and options ``config`` builds: its checkpoint's, or its own."""
    if config.ckpt_path:
        weights = read_weights(config.ckpt_path)
        return weights.arch, weights.arch_options
    return str(config.arch), dict(config.arch_options)
