"""The folder-scan benchmark times like against like: on its layouts both scans list the same files."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.benchmarks.folder_scan import make_folder, scan_folder_before
from selfsup_color.data.files import scan_folder


@pytest.mark.parametrize(
    ("width", "links"), [(0, False), (3, False), (0, True)], ids=["flat", "tree", "farm"]
)
def test_old_and_new_scans_list_the_same_files(tmp_path: Path, width: int, links: bool) -> None:
    folder = make_folder(tmp_path / "set", 300, width, links)
    found = sorted(scan_folder(folder))
    assert found == sorted(scan_folder_before(folder))
    assert len(found) == 297 and all(p.suffix == ".jpg" for p in found)  # 1 name in 100 is a .txt
    assert len({p.parent for p in found}) == max(width * width, 1)
