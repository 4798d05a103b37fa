"""Rank helpers: the process group's rank and world size, and global rank zero before the group exists."""

from __future__ import annotations

import socket

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from selfsup_color.distributed import in_process_group, is_global_zero, rank_world

LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK")


@pytest.mark.parametrize(
    ("env", "zero"),
    [
        ({}, True),
        ({"RANK": "0", "LOCAL_RANK": "3"}, True),  # RANK is the global rank
        ({"RANK": "2"}, False),
        ({"LOCAL_RANK": "1"}, False),
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),
        ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True),
    ],
)
def test_without_a_group_the_launcher_variables_decide(
    env: dict[str, str], zero: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert not in_process_group()
    assert rank_world() == (0, 1)  # data is not sharded without a group to all-reduce over
    assert is_global_zero() is zero


def _worker(rank: int, port: int, results: dict[int, tuple[int, int, bool]]) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        results[rank] = (*rank_world(), is_global_zero())
    finally:
        dist.destroy_process_group()


def test_in_a_group_the_group_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")  # what the group says wins over a stale variable
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(port, results), nprocs=2)
        assert dict(results) == {0: (0, 2, True), 1: (1, 2, False)}
