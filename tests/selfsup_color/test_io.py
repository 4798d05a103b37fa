"""Atomic writes: complete or absent, with unique temporary files, so concurrent writers never collide."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch

from selfsup_color.core.bins import Q
from selfsup_color.core.prior import Prior, load_prior, save_prior
from selfsup_color.io import PARTIAL, ensure_writable_dir, write_atomic, write_text_atomic


def record(seed: int) -> Prior:
    counts = torch.randint(1, 1000, (Q,), generator=torch.Generator().manual_seed(seed))
    prior = counts.double() / counts.sum()
    return Prior(prior, counts, 5.0, seed, int(counts.sum()), 0, 4, f"writer {seed}")


def test_concurrent_prior_writers_leave_one_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "prior.json"
    records = [record(seed) for seed in range(4)]
    errors: list[BaseException] = []
    seen: list[str] = []
    done = threading.Event()

    def write(r: Prior) -> None:
        try:
            for _ in range(25):
                save_prior(r, path)
        except BaseException as error:
            errors.append(error)

    def read() -> None:
        while not done.is_set():
            if path.exists():
                seen.append(load_prior(path).source)  # raises on a half-written file

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(r,)) for r in records]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    reader.join()
    assert errors == []
    final = load_prior(path)
    assert any(torch.equal(final.counts, r.counts) and final.source == r.source for r in records)
    assert set(seen) <= {r.source for r in records}
    assert [p.name for p in tmp_path.iterdir()] == ["prior.json"]  # no temporary file left


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = write_text_atomic(tmp_path / "deep" / "notes.txt", "old")
    assert path.read_text() == "old\n"

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(path, fail)
    assert path.read_text() == "old\n" and [p.name for p in path.parent.iterdir()] == ["notes.txt"]


def test_written_files_get_the_usual_permissions(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = write_text_atomic(tmp_path / "atomic.txt", "x")
    assert os.stat(atomic).st_mode == os.stat(plain).st_mode


def test_checkpoints_are_written_through_the_same_helper(tmp_path: Path) -> None:
    from selfsup_color.pretrain.checkpoint_io import AtomicCheckpointIO

    path = tmp_path / "ckpt" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, path)
    AtomicCheckpointIO().save_checkpoint({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 2}
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_ensure_writable_dir_creates_the_folder_or_fails_naming_it(tmp_path: Path) -> None:
    folder = ensure_writable_dir(tmp_path / "a" / "b")
    assert folder.is_dir() and list(folder.iterdir()) == []  # the probe file is gone
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    for path in (blocker, blocker / "sub"):
        with pytest.raises(OSError, match=f"cannot write to the output folder {path} ") as info:
            ensure_writable_dir(path)
        assert "\n" not in str(info.value)


def test_temporary_names_carry_the_writers_process_id(tmp_path: Path) -> None:
    names: list[str] = []

    def write(tmp: Path) -> None:
        names.append(tmp.name)
        tmp.write_text("x")

    write_atomic(tmp_path / "last.ckpt", write)
    match = PARTIAL.match(names[0])
    assert match is not None and int(match["pid"]) == os.getpid() and names[0].startswith(".last.ckpt.")
    assert PARTIAL.match(f".last.ckpt.{'d' * 32}.partial")["pid"] is None  # an earlier release's name
