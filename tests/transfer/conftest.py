"""Fixtures of the transfer tests: real data sets from ../shared, unpacked once per session or skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfsup_color.data import extract_archive
from tests.conftest import shared_dir


def unpacked(name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``shared/data/<name>.tar`` unpacked to a session temporary folder; skips when absent."""
    root = shared_dir()
    archive = root / "data" / f"{name}.tar" if root else None
    if archive is None or not archive.is_file():
        pytest.skip(f"{name} not found: set SELFSUP_COLOR_SHARED to the folder holding data/{name}.tar")
    return extract_archive(archive, tmp_path_factory.mktemp(name))


@pytest.fixture(scope="session")
def coco128(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``coco128/`` (images/, annotations/instances.json, masks/, masks_classes.json)."""
    return unpacked("coco128", tmp_path_factory)


@pytest.fixture(scope="session")
def hymenoptera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``hymenoptera/`` ({train,val}/{ants,bees}/*.jpg)."""
    return unpacked("hymenoptera", tmp_path_factory)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``$SELFSUP_COLOR_CACHE`` at a session-wide temporary folder: tests never fill ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("SELFSUP_COLOR_CACHE", str(cache))
    return cache
