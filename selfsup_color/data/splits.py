"""Seeded train/val splits, and split files: one implementation for pretraining and every transfer task.

A split holds out ``round(fraction * n)`` items (at least 1, at most n - 1), the first ones of
:func:`~selfsup_color.data.sampling.permutation` ``(n, seed, stream)``; each use has its own stream
(pretraining :data:`~selfsup_color.data.sampling.SPLIT`, detection 7, segmentation 11), so the split
files of the recipes (``experiments/results/splits``) are reproduced as they were written.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..io import write_text_atomic
from .sampling import permutation

T = TypeVar("T")


def held_out_count(n: int, fraction: float) -> int:
    """How many of ``n`` items a split with val ``fraction`` holds out: round(fraction * n), in [1, n - 1]."""
    if n < 2:
        raise ValueError(f"cannot split {n} item(s) into train and val: need at least 2")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the validation fraction must be in (0, 1), got {fraction}")
    return min(max(round(fraction * n), 1), n - 1)


def seeded_split(items: Sequence[T], fraction: float, seed: int, stream: int) -> tuple[list[T], list[T]]:
    """(train, val) of ``items``, val holding :func:`held_out_count` of them; both keep the items' order.

    Deterministic in (``seed``, ``stream``) and the order of ``items`` (sort them first when their
    order is not itself fixed); the two parts are disjoint and together are ``items``.
    """
    held_out = set(permutation(len(items), seed, stream)[: held_out_count(len(items), fraction)].tolist())
    train = [item for i, item in enumerate(items) if i not in held_out]
    return train, [item for i, item in enumerate(items) if i in held_out]


def write_split(path: str | Path, train: Sequence[Any], val: Sequence[Any], **about: Any) -> Path:
    """State a split, atomically: JSON ``{**about, "train": [...], "val": [...]}``."""
    data = {**about, "train": list(train), "val": list(val)}
    return write_text_atomic(path, json.dumps(data, indent=1))


def read_split(path: str | Path, known: Collection[Any] | None = None) -> tuple[list[Any], list[Any]]:
    """The (train, val) lists of a split file (:func:`write_split`'s JSON); ValueError naming the file
    when they overlap or, with ``known``, name items that are not there."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} not found (write one with write_split)")
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("train", "val")):
        raise ValueError(f"{path}: expected a JSON object with 'train' and 'val' lists")
    train, val = list(data["train"]), list(data["val"])
    if known is not None:
        unknown = [item for item in train + val if item not in known]
        if unknown:
            raise ValueError(f"{path}: {len(unknown)} items are not in the data, e.g. {unknown[:3]}")
    overlap = sorted(set(train) & set(val), key=str)
    if overlap:
        raise ValueError(f"{path}: {len(overlap)} items are in both train and val, e.g. {overlap[:3]}")
    return train, val
