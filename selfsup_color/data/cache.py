"""The cache folder and one-time archive unpacking (atomic file writes: :mod:`selfsup_color.io`).

Several processes (DDP ranks, concurrent test runs) may fill the cache at once. Every file or folder
appears under its final name in one ``os.replace`` / ``os.rename``, so a reader never sees it half
written, and when two processes race, either result is complete.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """``$SELFSUP_COLOR_CACHE`` if set, else ``~/.cache/selfsup_color`` (not created here)."""
    env = os.environ.get("SELFSUP_COLOR_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "selfsup_color"


def extract_archive(archive: str | Path, root: str | Path | None = None) -> Path:
    """Unpack a tar archive holding one top folder ``NAME/`` (``NAME.tar``) into ``root``, once.

    ``root`` defaults to :func:`cache_dir`. Returns ``root / NAME``; when that folder exists already
    the archive is not opened again. Members are unpacked with tarfile's ``"data"`` filter (no
    absolute paths, links out of the folder or device files).
    """
    archive = Path(archive)
    root = Path(root) if root is not None else cache_dir()
    target = root / archive.name.split(".")[0]
    if target.is_dir():
        return target
    if not archive.is_file():
        raise FileNotFoundError(f"archive {archive} not found")
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}.", suffix=".partial"))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        unpacked = scratch / target.name
        if not unpacked.is_dir():
            raise ValueError(f"{archive} does not unpack to one folder named {target.name}/")
        try:
            os.rename(unpacked, target)
        except OSError:
            if not target.is_dir():  # not another process winning the race: a real failure
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
