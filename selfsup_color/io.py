"""Atomic file writes: a file appears under its name complete, or not at all; and
:func:`ensure_writable_dir`, the check commands make on their output folder before any work.

The content goes to a temporary file beside the target, ``.NAME.PID.RANDOM.partial`` (the writer's
process id and a random token), in the same folder so that the rename stays on one file system, which
``os.replace`` then moves over the target in one step. The writer creates the temporary file, so it
gets the permissions of any new file (the umask), not ``mkstemp``'s owner-only ones. A kill mid-write
leaves the old file (or none) and a ``.partial`` file, which :func:`remove_stale_partials` deletes
once its writer is gone; two writers of one path (DDP ranks, concurrent runs) never share a temporary
file, and the last rename wins with a complete file.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path

PARTIAL = re.compile(r"^\..+?\.(?:(?P<pid>\d+)\.)?[0-9a-f]{32}\.partial$")
"""The temporary files of :func:`write_atomic` (earlier releases wrote no process id)."""


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` to create a temporary file beside ``path``, then rename it to ``path``.

    Creates the parent folders. If ``write`` raises, the temporary file is removed and ``path`` is
    left as it was. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.partial"
    try:
        write(name)
        os.replace(name, path)
    except BaseException:
        name.unlink(missing_ok=True)
        raise
    return path


def process_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` runs on this machine (signal 0 probes it without a signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_partials(folder: str | os.PathLike[str], started: float) -> list[Path]:
    """Delete the temporary files that killed :func:`write_atomic` calls left in ``folder``; return them.

    A temporary file is stale when the process named in it no longer runs on this machine, or when it
    was last written before ``started`` (a time stamp, e.g. the run's start: a live writer keeps
    writing, and a recycled process id must not keep a file forever). Live writers' files are kept.
    """
    folder, removed = Path(folder), []
    for path in sorted(folder.glob(".*.partial")) if folder.is_dir() else []:
        match = PARTIAL.match(path.name)
        if match is None or not path.is_file():
            continue
        dead = match["pid"] is not None and not process_alive(int(match["pid"]))
        try:
            if dead or path.stat().st_mtime < started:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # its writer renamed it meanwhile
            continue
    return removed


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`write_atomic`), ending it with a newline."""
    ending = "" if text.endswith("\n") else "\n"
    return write_atomic(path, lambda tmp: tmp.write_text(text + ending, encoding="utf-8"))


def ensure_writable_dir(
    path: str | os.PathLike[str], what: str = "output folder", advice: str = "choose another one"
) -> Path:
    """Create the folder ``path`` (with its parents) and check that a file can be written in it.

    For commands to call before their work, so that an unusable output folder fails at once. Raises
    the ``OSError`` met (``PermissionError``, ``NotADirectoryError``...) with a one-line message
    naming the folder when it cannot be created or written to. Returns the folder.
    """
    folder = Path(path)
    probe = folder / f".write-test.{uuid.uuid4().hex}.partial"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise type(e)(f"cannot write to the {what} {folder} ({reason}); {advice}") from e
    return folder
