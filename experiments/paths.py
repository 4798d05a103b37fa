"""Where the experiment scripts find the repository and the shared data archives."""

from __future__ import annotations

import os
from pathlib import Path

from selfsup_color.data import extract_archive

REPO = Path(__file__).resolve().parents[1]
"""The repository root (recipes name data as ``data/<set>`` relative to it)."""
SHARED = Path(os.environ.get("SELFSUP_COLOR_SHARED", REPO.parent / "shared"))
"""The folder holding ``data/<set>.tar`` archives: ``$SELFSUP_COLOR_SHARED``, else ``../shared``."""


def ensure_data(name: str, root: Path = REPO / "data") -> Path:
    """``root/name``, unpacked from ``SHARED/data/<name>.tar`` when missing (the recipes' layout)."""
    if (root / name).is_dir():
        return root / name
    archive = SHARED / "data" / f"{name}.tar"
    if not archive.is_file():
        raise FileNotFoundError(
            f"{root / name} is missing and {archive} not found: set SELFSUP_COLOR_SHARED to the folder "
            f"holding data/{name}.tar, or unpack it yourself (tar -xf {name}.tar -C {root})"
        )
    return extract_archive(archive, root)
