"""The quick start end to end, shortened: train on the built-in photos, colorize, report."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from selfsup_color.cli import main
from selfsup_color.data import find_images


def test_quickstart_trains_colorizes_and_reports(tmp_path: Path, capsys) -> None:
    out = tmp_path / "qs"
    args = [
        "--trainer.max_steps",
        "40",
        "--trainer.val_check_interval",
        "40",
        "--data.crop",
        "32",
        "--data.val_crop",
        "64",
        "--data.val_resize",
        "64",
        "--data.num_workers",
        "0",
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
    ]
    assert main(["quickstart", "--trainer.default_root_dir", str(out), *args]) == 0
    report = (out / "report.md").read_text()
    assert "| rebalanced AuC |" in report and "grid.png" in report and "prior.png" in report
    recipe = re.search(r"`(experiments/pretrain/[^`]+\.yaml)`", report.splitlines()[2])
    assert report.splitlines()[2].startswith("This is a smoke test") and recipe
    assert (Path(__file__).resolve().parents[3] / recipe.group(1)).is_file()
    held_out = find_images("builtin:val")
    for photo in held_out:
        written = out / "colorized" / f"{photo.stem}_color.png"
        assert Image.open(written).size == Image.open(photo).size
    width, height = Image.open(out / "grid.png").size  # 3 rows (L, ours, truth) x one column per photo
    assert height > 3 * 256 and width > len(held_out) * 256
    printed = capsys.readouterr().out
    rows = {
        line.split("|")[1].strip(): line.split("|")[2:4]
        for line in printed.splitlines()
        if line.startswith("| ")
    }
    ours, gray = (float(v) for v in rows["rebalanced AuC"])
    assert 0 < gray < 1 and 0 < ours < 1
    assert float(rows["colourfulness"][0]) > 0
