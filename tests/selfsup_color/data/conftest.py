"""Fixtures of the data tests: the real hymenoptera set, unpacked once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfsup_color.data import extract_archive
from tests.conftest import shared_dir


@pytest.fixture(scope="session")
def hymenoptera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``hymenoptera/`` ({train,val}/{ants,bees}/*.jpg) unpacked to a temporary folder; skips if absent."""
    root = shared_dir()
    archive = root / "data" / "hymenoptera.tar" if root else None
    if archive is None or not archive.is_file():
        pytest.skip(
            "hymenoptera not found: set SELFSUP_COLOR_SHARED to the folder holding data/hymenoptera.tar"
        )
    return extract_archive(archive, tmp_path_factory.mktemp("data"))


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``$SELFSUP_COLOR_CACHE`` at a session-wide temporary folder: tests never fill ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("SELFSUP_COLOR_CACHE", str(cache))
    return cache
