"""Finding the image files of a data source: a folder, a file list, ``builtin`` or explicit files.

:func:`find_images` is the one file finder of the toolkit: training, the prior, colorize, evaluate
and transfer all take their inputs through it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .builtin import builtin_images

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
"""File name endings taken as images when scanning a folder (compared case-insensitively)."""

Source = str | os.PathLike[str]


def is_image_name(name: str | Path) -> bool:
    """Whether ``name`` ends with one of :data:`IMAGE_EXTENSIONS`, in any case."""
    return os.fspath(name).lower().endswith(IMAGE_EXTENSIONS)


def find_images(source: Source | Sequence[Source]) -> list[Path]:
    """The image files of ``source``: absolute paths, sorted and without duplicates.

    ``source`` is one of these, or a list of them (their files are merged):

    - a folder: every image in it and its subfolders (see :data:`IMAGE_EXTENSIONS`); names that
      start with a dot (hidden files and folders, macOS ``._*`` files) are skipped;
    - a ``.txt`` file list: one path per line, relative ones taken from the list's folder; blank lines
      and lines starting with ``#`` are ignored; every listed file must exist;
    - a file named explicitly, whatever its ending (Pillow may read more formats than
      :data:`IMAGE_EXTENSIONS`, e.g. HEIC with a plugin; a file it cannot read is skipped with a
      warning where images are read), hidden or not;
    - ``"builtin"`` or ``"builtin:train"``, ``"builtin:val"``: scikit-image's photos
      (:mod:`selfsup_color.data.builtin`). To mean a folder named ``builtin``, write ``./builtin``.

    Raises FileNotFoundError for a missing path and ValueError for a source without images.
    """
    sources = [source] if isinstance(source, str | os.PathLike) else list(source)
    if not sources:
        raise ValueError("no image source given: pass a folder, a .txt file list, image files or 'builtin'")
    found: set[Path] = set()
    for item in sources:
        found.update(_expand(item))
    return sorted(found)


def _expand(source: Source) -> list[Path]:
    text = os.fspath(source)
    if text == "builtin" or text.startswith("builtin:"):
        return builtin_images(text.partition(":")[2] or "train")
    path = _absolute(Path(text).expanduser())
    if not path.exists():
        raise FileNotFoundError(
            f"image source {path} does not exist: give a folder of images, a .txt file list, "
            "an image file or 'builtin'"
        )
    if path.is_dir():
        return scan_folder(path)
    return read_file_list(path) if path.suffix.lower() == ".txt" else [path]


def scan_folder(folder: Path) -> list[Path]:
    """Images under ``folder``, recursively (following links), hidden names skipped; never empty."""
    found = []
    for parent, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(parent, n) for n in names if not n.startswith(".") and is_image_name(n)]
    if not found:
        raise ValueError(
            f"no images found under {folder}: looked for {', '.join(IMAGE_EXTENSIONS)} files "
            "(any case) in it and its subfolders"
        )
    return found


def read_file_list(list_file: Path) -> list[Path]:
    """The files listed in ``list_file``, one per line, relative paths taken from its folder."""
    base = list_file.parent
    lines = list_file.read_text(encoding="utf-8").splitlines()
    entries = [line.strip() for line in lines]
    files = [_absolute(base / Path(e).expanduser()) for e in entries if e and not e.startswith("#")]
    if not files:
        raise ValueError(f"file list {list_file} lists no files (one path per line expected)")
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of the {len(files)} files listed in {list_file} do not exist, "
            f"for example {missing[0]} (relative paths are taken from the list's folder)"
        )
    return files


def _absolute(path: Path) -> Path:
    """``path`` made absolute with ``..`` folded, links left alone (so one file has one name)."""
    return Path(os.path.abspath(path))
