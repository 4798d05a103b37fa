"""The folder scan (issue 16: loop-safe, each real file once) against the scan it replaced, in one process.

The baseline is the scan as it was: ``os.walk(folder, followlinks=True)`` keeping image names (which
never ends on a link loop). Both sides scan the same folders of empty files, with no loop or duplicate:

- ``flat``: one folder of ``--files`` files (plus 1% non-image names);
- ``tree``: the same number of files spread over 10 x 10 subfolders;
- ``links``: one folder of links to that many files elsewhere (a link farm).

Rounds interleave the two sides in an order that alternates round by round; we print the median time of
each and the median of the per-round ratios (new / old: above 1 is slower). ``find_images`` adds the
same sort to both, so the scan is timed alone.

Run: ``python -m experiments.benchmarks.folder_scan [--files 50000 --rounds 9]``
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from selfsup_color.command import command_parser, parse
from selfsup_color.data.files import is_image_name, scan_folder


def scan_folder_before(folder: Path) -> list[Path]:
    """The scan before issue 16 (``os.walk`` following links), as it was."""
    found = []
    for parent, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(parent, n) for n in names if not n.startswith(".") and is_image_name(n)]
    return found


def make_folder(root: Path, files: int, width: int, links: bool = False) -> Path:
    """``files`` empty files under ``root`` (1% not images): flat, or in ``width`` x ``width`` folders;
    with ``links``, ``root`` holds links to them instead (a link farm), the files in ``root``'s sibling."""
    folders = [root / f"d{i}" / f"e{j}" for i in range(width) for j in range(width)] or [root]
    store = root.with_name(root.name + "-store") if links else root
    for folder in {store, *folders}:
        folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        name = f"img_{i:06d}.{'txt' if i % 100 == 0 else 'jpg'}"
        if links:
            (store / name).touch()
            (folders[i % len(folders)] / name).symlink_to(store / name)
        else:
            (folders[i % len(folders)] / name).touch()
    return root


def main() -> None:
    parser = command_parser("python -m experiments.benchmarks.folder_scan", __doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parse(parser, sys.argv[1:])
    with tempfile.TemporaryDirectory() as scratch:
        for layout, width, links in (("flat", 0, False), ("tree", 10, False), ("links", 0, True)):
            folder = make_folder(Path(scratch, layout), args.files, width, links)
            assert sorted(scan_folder(folder)) == sorted(scan_folder_before(folder))
            times: dict[str, list[float]] = {"old": [], "new": []}
            for round_ in range(args.rounds):
                order = [("old", scan_folder_before), ("new", scan_folder)]
                for name, scan in order if round_ % 2 else order[::-1]:
                    start = time.perf_counter()
                    scan(folder)
                    times[name].append(time.perf_counter() - start)
            ratios = [new / old for old, new in zip(times["old"], times["new"], strict=True)]
            print(
                f"{layout}: {args.files} files, old {statistics.median(times['old']) * 1e3:.1f} ms, "
                f"new {statistics.median(times['new']) * 1e3:.1f} ms, new/old median "
                f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}, "
                f"{args.rounds} rounds)"
            )


if __name__ == "__main__":
    main()
