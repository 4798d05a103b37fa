"""Every source folder is a regular package (an ``__init__.py``), not a namespace package."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_source_folder_has_an_init() -> None:
    folders = {
        path.parent
        for top in ("selfsup_color", "transfer")
        for path in (REPO / top).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    missing = sorted(str(f.relative_to(REPO)) for f in folders if not (f / "__init__.py").is_file())
    assert not missing, f"add an __init__.py to: {missing}"
