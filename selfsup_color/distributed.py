"""Where this process stands in a distributed run: its rank and the world size.

Two questions, two answers:

- :func:`rank_world` is the default process group's (rank, world size), or (0, 1) without one: what
  sharding data and all-reducing counts must follow, since only the group's members exchange tensors;
- :func:`is_global_zero` also answers before the group exists, from the variables a launcher sets
  (``RANK``, else ``LOCAL_RANK`` on node ``NODE_RANK``; torchrun and Lightning set them), for the
  work only one process of a run must do (writing a report, logging a run).
"""

from __future__ import annotations

import os

import torch.distributed as dist


def in_process_group() -> bool:
    """Whether a default process group is initialised (``torch.distributed`` is built and set up)."""
    return dist.is_available() and dist.is_initialized()


def rank_world() -> tuple[int, int]:
    """(rank, world size) in the default process group; (0, 1) when there is none."""
    return (dist.get_rank(), dist.get_world_size()) if in_process_group() else (0, 1)


def is_global_zero() -> bool:
    """Whether this process is the run's global rank 0 (the group's, else the launcher's variables)."""
    if in_process_group():
        return dist.get_rank() == 0
    rank = os.environ.get("RANK")
    if rank is not None:
        return int(rank) == 0
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0
