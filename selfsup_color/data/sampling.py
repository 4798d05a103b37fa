"""Seeded orders: the training sampler, worker seeding and the permutations behind splits.

:class:`EpochSampler` is a ``DistributedSampler`` (over 1 replica when no process group is set up),
so Lightning keeps it under DDP instead of replacing it, and calls its ``set_epoch`` at the start of
every epoch. That one call reshuffles the order (``seed + epoch``, as ``DistributedSampler`` does) and
moves the dataset to the epoch's crops, in the workers too.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

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
        world, rank = (dist.get_world_size(), dist.get_rank()) if _distributed() else (1, 0)
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        self.images = dataset

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.images.set_epoch(epoch)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed Python's and NumPy's global generators per worker.

    The crops do not use them (see :mod:`selfsup_color.data.dataset`); this keeps anything else that
    draws from them reproducible and different between workers. PyTorch already seeds each worker's
    torch generator with ``base_seed + worker_id``; the other two follow it.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global generator is what third-party code draws from
