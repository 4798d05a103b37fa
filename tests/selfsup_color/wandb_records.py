"""Read the records of an offline wandb run file (``run-*.wandb``) for tests.

The file is a LevelDB-style log: a 7-byte header (``:W&B``, magic, version), then 32 KiB blocks of
chunks, each with a 7-byte header (crc32, little-endian length, type: 1 full, 2 first, 3 middle,
4 last). Chunks join into protobuf ``Record`` messages.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK, HEADER = 32768, 7


def wandb_records(path: Path) -> Iterator[Any]:
    """The ``wandb_internal_pb2.Record`` messages stored in ``path``, in order."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    if len(data) < HEADER:  # created, header not written yet (wandb-core writes in the background)
        return
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a wandb run file")
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:  # zero padding at the end of a block
            pos += left
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def finished_run_records(path: Path, timeout: float = 60.0) -> dict[str, list[Any]]:
    """The records of ``path`` by kind, once its ``exit`` record is on disk.

    wandb-core writes the file in the background: ``wandb.finish()`` can return before the last
    records, or even the file's header, reach the disk (both seen on a loaded machine: the header
    with wandb 0.19.9 and the suite at nice 19 beside two training processes), so a test waits for
    the run's end.
    """
    deadline = time.monotonic() + timeout
    while True:
        records: dict[str, list[Any]] = {}
        for record in wandb_records(path):
            records.setdefault(record.WhichOneof("record_type"), []).append(record)
        if "exit" in records or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def md5_base64(path: Path) -> str:
    """wandb's manifest digest of a file: its MD5, base64-encoded."""
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()
