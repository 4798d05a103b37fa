"""Cached pooled features: the encoder runs once over a split, then probes train for many epochs on them.

Features are stored as float16, in memory or in ``.npy`` files opened memory-mapped (for sets that do
not fit). ``"auto"`` picks memory when the features take under a quarter of the RAM, else disk.
Under DDP each rank extracts and keeps its own shard (``files[rank::world]``), so no image is seen
twice and no features cross processes.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from selfsup_color.progress import progress_bar

from .data import LabelledFiles
from .probes import pool_features

CacheMode = Literal["auto", "memory", "disk", "none"]
CACHE_MODES = ("auto", "memory", "disk", "none")


def shard(data: LabelledFiles, rank: int, world: int, equal: bool = False) -> LabelledFiles:
    """This rank's share of ``data``: items ``rank, rank + world, ...``.

    ``equal`` gives every rank ``len // world`` items (dropping at most ``world - 1``), so that training
    ranks run the same number of steps, as DDP's gradient all-reduce needs.
    """
    end = len(data.files) // world * world if equal else len(data.files)
    return data.subset(range(rank, end, world))


def feature_bytes(count: int, dims: dict[str, int]) -> int:
    """Bytes of ``count`` items' float16 features."""
    return 2 * count * sum(dims.values())


def physical_memory() -> int:
    """Bytes of RAM (0 when unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def resolve_mode(mode: CacheMode, count: int, dims: dict[str, int]) -> CacheMode:
    """``auto`` -> memory when the features take under 1/4 of the RAM, else disk."""
    if mode not in CACHE_MODES:
        raise ValueError(f"cache must be one of {CACHE_MODES}, got {mode!r}")
    if mode != "auto":
        return mode
    return "memory" if feature_bytes(count, dims) < physical_memory() / 4 else "disk"


@dataclass
class FeatureStore(Dataset[dict[str, object]]):
    """Pooled features per tap (N x D float16 tensors or memory-mapped arrays) and labels."""

    features: dict[str, Tensor | np.ndarray]
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, object]:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> dict[str, object]:
        """A whole batch at once (the DataLoader calls this with the batch's indices)."""
        order = np.asarray(indices)
        rows = {name: torch.as_tensor(np.asarray(values[order])) for name, values in self.features.items()}
        return {"features": rows, "label": self.labels[torch.as_tensor(order)]}


def _allocate(mode: CacheMode, count: int, dims: dict[str, int], folder: Path | None, split: str) -> dict:
    if mode == "memory":
        return {name: torch.empty(count, dim, dtype=torch.float16) for name, dim in dims.items()}
    if folder is None:
        raise ValueError("a disk cache needs a folder (cache_dir)")
    folder.mkdir(parents=True, exist_ok=True)
    return {
        name: np.lib.format.open_memmap(folder / f"{split}-{name}.npy", "w+", np.float16, (count, dim))
        for name, dim in dims.items()
    }


def extract_features(
    encoder: nn.Module,
    sizes: dict[str, int],
    channels: dict[str, int],
    loader: DataLoader,
    count: int,
    mode: CacheMode,
    folder: Path | None = None,
    split: str = "train",
) -> FeatureStore:
    """Run ``encoder`` (``(rgb, taps) -> maps``) once over ``loader`` and keep pooled features.

    The loader should give deterministic crops in a fixed order.

    Unreadable images are dropped (the store is trimmed to what was read).
    """
    device = next(encoder.parameters()).device
    dims = {name: channels[name] * s * s for name, s in sizes.items()}
    store = _allocate(mode, count, dims, folder, split)
    labels = torch.empty(count, dtype=torch.int64)
    filled = 0
    encoder.eval()
    with torch.no_grad():
        for batch in progress_bar(loader, desc=f"{split} features", unit="batch", leave=False):
            n = len(batch["label"])
            pooled = pool_features(encoder(batch["rgb"].to(device), list(sizes)), sizes)
            for name, values in pooled.items():
                block = values.to("cpu", torch.float16)
                store[name][filled : filled + n] = block if mode == "memory" else block.numpy()
            labels[filled : filled + n] = batch["label"]
            filled += n
    if filled < count:
        warnings.warn(f"{count - filled} unreadable image(s) left out of the {split} features", stacklevel=2)
    features = {name: values[:filled] for name, values in store.items()}
    for values in features.values():
        if isinstance(values, np.memmap):
            values.flush()
    return FeatureStore(features, labels[:filled])


def collate_features(batch: dict[str, object]) -> dict[str, object]:
    """Batches come whole from :meth:`FeatureStore.__getitems__`: nothing to stack."""
    return batch


def cached_loader(store: FeatureStore, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Batches of cached features (in this process: reading them is cheap)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        store,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collate_features,
        generator=generator,
        drop_last=shuffle and len(store) > batch_size,  # no 1-item batch for BatchNorm; equal steps per rank
    )
