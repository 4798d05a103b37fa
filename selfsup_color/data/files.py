"""Finding the image files of a data source: a folder, a file list, ``builtin`` or explicit files.

:func:`find_images` is the one file finder of the toolkit: training, the prior, colorize, evaluate
and transfer all take their inputs through it.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
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
      start with a dot (hidden files and folders, macOS ``._*`` files) are skipped; links are
      followed, each real file is listed once, and loops end (see :func:`scan_folder`);
    - a ``.txt`` file list: one path per line, relative ones taken from the list's folder; blank lines
      and lines starting with ``#`` are ignored; every listed file must exist; a file listed twice
      is kept once (see :func:`read_file_list`);
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


class FolderScanWarning(UserWarning):
    """A folder scan or a file list left out links, folders or duplicate files (one summary per scan)."""


@dataclass
class SkippedPaths:
    """What one scan left out, by reason (paths as reached, in scan order)."""

    link_loops: list[str] = field(default_factory=list)
    """Links to a folder that contains them (``self -> .``, ``up -> ..``, a link to ``/``)."""
    repeated_folders: list[str] = field(default_factory=list)
    """Folders already scanned under another name (a second link to one folder, a link to a sibling)."""
    duplicate_files: list[str] = field(default_factory=list)
    """Files already listed under another name (a link to a listed file, a list naming a file twice)."""
    broken_links: list[str] = field(default_factory=list)
    """Links whose target is missing, unreachable or a link loop itself."""
    unreadable_folders: list[str] = field(default_factory=list)
    """Folders that could not be listed, with the reason (e.g. permission denied)."""

    def summary(self, examples: int = 3) -> str:
        """One line: the count of each reason with up to ``examples`` paths; empty if nothing was skipped."""
        parts = []
        for name, paths in vars(self).items():
            if paths:
                shown = ", ".join(paths[:examples]) + (", ..." if len(paths) > examples else "")
                parts.append(f"{name.replace('_', ' ')}: {len(paths)} ({shown})")
        return "; ".join(parts)


def scan_folder(folder: Path) -> list[Path]:
    """Images under ``folder``, recursively, following links; hidden names skipped; never empty.

    Terminates on any link structure and lists each real file once (identity: its resolved path):

    - the real tree (no link followed) is scanned first, so its files keep their own names;
    - then the links met, in sorted order, round after round for links found inside linked folders;
      a link to a folder is followed unless the folder contains the link (a loop) or was already
      scanned (identity: ``os.stat`` device and inode), so a folder outside the tree is scanned once;
    - a link to a file already listed, a broken link and an unreadable folder are skipped.

    What was skipped is said in one :class:`FolderScanWarning` per scan, with counts and examples.
    """
    skipped = SkippedPaths()
    found: list[Path] = []
    root = os.fspath(folder)
    scanned: set[tuple[int, int]] = {_identity(os.stat(root))}
    scanned_real: set[str] = set()  # resolved paths of the folders scanned, to spot linked files
    file_links: list[tuple[str, str]] = []  # (path as reached, resolved path)
    pending = [(root, os.path.realpath(root))]  # folders to scan: (path as reached, resolved path)
    while pending:
        links: list[tuple[str, str]] = []  # (link, resolved path of its folder), followed next round
        while pending:
            path, real = pending.pop()
            try:
                with os.scandir(path) as entries:
                    scanned_real.add(real)
                    base = Path(path)  # base / name: 1.6x faster than Path(entry.path) (Python 3.11)
                    for entry in entries:
                        name = entry.name
                        if name.startswith("."):
                            continue
                        if entry.is_symlink():
                            links.append((entry.path, real))
                        elif is_image_name(name) and entry.is_file(follow_symlinks=False):
                            found.append(base / name)
                        elif entry.is_dir(follow_symlinks=False):
                            key = _identity(entry.stat(follow_symlinks=False))
                            if key in scanned:  # a bind mount of a folder already scanned
                                skipped.repeated_folders.append(entry.path)
                            else:
                                scanned.add(key)
                                pending.append((entry.path, os.path.join(real, name)))
            except OSError as error:
                skipped.unreadable_folders.append(f"{path}: {error.strerror or error}")
        for link, where in sorted(links):
            try:
                status = os.stat(link)
            except OSError:
                skipped.broken_links.append(link)
                continue
            target = os.path.realpath(link)
            if stat.S_ISDIR(status.st_mode):
                if where == target or where.startswith(os.path.join(target, "")):
                    skipped.link_loops.append(link)
                elif _identity(status) in scanned:
                    skipped.repeated_folders.append(link)
                else:
                    scanned.add(_identity(status))
                    pending.append((link, target))
            elif stat.S_ISREG(status.st_mode) and is_image_name(link):
                file_links.append((link, target))
    linked: set[str] = set()
    for link, target in file_links:  # sorted within each round, rounds in order
        directory, name = os.path.split(target)
        listed = directory in scanned_real and not name.startswith(".") and is_image_name(name)
        if listed or target in linked:
            skipped.duplicate_files.append(link)
        else:
            linked.add(target)
            found.append(Path(link))
    if summary := skipped.summary():
        warnings.warn(f"scanning {folder} skipped {summary}", FolderScanWarning, stacklevel=4)
    if not found:
        raise ValueError(
            f"no images found under {folder}: looked for {', '.join(IMAGE_EXTENSIONS)} files "
            "(any case) in it and its subfolders" + (f" (skipped {summary})" if summary else "")
        )
    return found


def read_file_list(list_file: Path) -> list[Path]:
    """The files listed in ``list_file``, one per line, relative paths taken from its folder.

    Each file is kept once, under its first listed name (identity: ``os.stat`` device and inode, so a
    line repeated or a second name through a link counts once); one :class:`FolderScanWarning`
    counts the duplicates.
    """
    base = list_file.parent
    lines = list_file.read_text(encoding="utf-8").splitlines()
    entries = [line.strip() for line in lines]
    files = [_absolute(base / Path(e).expanduser()) for e in entries if e and not e.startswith("#")]
    if not files:
        raise ValueError(f"file list {list_file} lists no files (one path per line expected)")
    kept: dict[tuple[int, int], Path] = {}
    missing, skipped = [], SkippedPaths()
    for file in files:
        try:
            status = os.stat(file)
        except OSError:
            status = None
        if status is None or not stat.S_ISREG(status.st_mode):
            missing.append(file)
        elif _identity(status) in kept:
            skipped.duplicate_files.append(os.fspath(file))
        else:
            kept[_identity(status)] = file
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of the {len(files)} files listed in {list_file} do not exist, "
            f"for example {missing[0]} (relative paths are taken from the list's folder)"
        )
    if summary := skipped.summary():
        warnings.warn(f"reading {list_file} skipped {summary}", FolderScanWarning, stacklevel=4)
    return list(kept.values())


def _identity(status: os.stat_result) -> tuple[int, int]:
    """A file's identity on this machine: its device and inode."""
    return status.st_dev, status.st_ino


def _absolute(path: Path) -> Path:
    """``path`` made absolute with ``..`` folded, links left alone (so one file has one name)."""
    return Path(os.path.abspath(path))
