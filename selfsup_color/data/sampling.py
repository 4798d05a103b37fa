"""Seeded orders: the training sampler, worker seeding and the permutations behind splits.

:class:`EpochSampler` is a ``DistributedSampler`` (over 1 replica when no process group is set up),
so Lightning keeps it under DDP instead of replacing it, and calls its ``set_epoch`` at the start of
every epoch. That one call reshuffles the order (``seed + epoch``, as ``DistributedSampler`` does) and
moves the dataset to the epoch's crops, in the workers too.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from ..distributed import rank_world
from .dataset import ImageFiles

SPLIT, SUBSET, PRIOR = 1, 2, 3
"""Stream numbers of :func:`permutation`, one per use, so the uses draw independent orders."""


def permutation(n: int, seed: int, stream: int) -> np.ndarray:
    """A permutation of ``range(n)`` fixed by ``seed`` and ``stream``."""
    return np.random.default_rng([seed, stream]).permutation(n)


class EpochSampler(DistributedSampler[int]):
    """Shuffled indices of this rank's share; ``set_epoch`` also sets the dataset's epoch.

    The rank and world size come from ``torch.distributed`` when it is initialised (as it is when
    Lightning builds the loaders), else the sampler covers all items. Outside Lightning, call
    ``sampler.set_epoch(epoch)`` before each epoch, as with any ``DistributedSampler``.
    """

    def __init__(self, dataset: ImageFiles, seed: int = 0) -> None:
        rank, world = rank_world()
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        self.images = dataset
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.images.set_epoch(epoch)

    def skip_next(self, count: int) -> None:
        """Leave out the first ``count`` indices of the next pass (resuming inside an epoch)."""
        self._skip = count

    def __iter__(self) -> Iterator[int]:
        skip, self._skip = self._skip, 0
        return itertools.islice(super().__iter__(), skip, None)


class ResumableLoader(DataLoader):
    """A training DataLoader whose place inside the epoch is saved in Lightning checkpoints.

    Lightning stores ``state_dict()`` (the epoch and the batches served in it) with every
    checkpoint and hands it back through ``load_state_dict`` on resume; the next pass over the
    same epoch then starts after those batches (the :class:`EpochSampler` skips their indices, so
    no image is decoded twice), instead of replaying the epoch's first batches. Lightning does not
    prefetch from loaders with a length, so the count is exactly the batches trained on.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochSampler):
            raise TypeError("ResumableLoader needs an EpochSampler")
        self._served = 0
        self._restore: dict[str, int] | None = None

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        sampler, start = self.sampler, 0
        assert isinstance(sampler, EpochSampler)
        if self._restore is not None and self._restore["epoch"] == sampler.epoch:
            start = self._restore["batches"]
            sampler.skip_next(start * (self.batch_size or 1))
        self._restore, self._served = None, start
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        sampler = self.sampler
        assert isinstance(sampler, EpochSampler)
        return {"epoch": sampler.epoch, "batches": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._restore = {"epoch": int(state["epoch"]), "batches": int(state["batches"])}


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed Python's and NumPy's global generators per worker.

    The crops do not use them (see :mod:`selfsup_color.data.dataset`); this keeps anything else that
    draws from them reproducible and different between workers. PyTorch already seeds each worker's
    torch generator with ``base_seed + worker_id``; the other two follow it.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global generator is what third-party code draws from
