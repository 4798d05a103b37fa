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
from operator import itemgetter
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
    """What one scan left out, by reason (paths as reached)."""

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
        """One line: each reason's count and first ``examples`` paths (sorted); empty if none."""
        parts = []
        for name, paths in vars(self).items():
            if paths:
                shown = ", ".join(sorted(paths)[:examples]) + (", ..." if len(paths) > examples else "")
                parts.append(f"{name.replace('_', ' ')}: {len(paths)} ({shown})")
        return "; ".join(parts)


def scan_folder(folder: Path) -> list[Path]:
    """Images under ``folder``, recursively, following links; hidden names skipped; never empty.

    Terminates on any link structure and lists each real file once:

    - the real tree (no link followed) is scanned first, so its files keep their own names;
    - then the links met, in sorted order, round after round for links found inside linked folders;
      a link to a folder is followed unless the folder contains the link (a loop) or was already
      scanned (identity: ``os.stat`` device and inode), so a folder outside the tree is scanned once;
    - a link to a file is listed unless that file is already listed, as a plain entry of a scanned
      folder or through an earlier link (identity: device and inode);
    - broken links and unreadable folders are skipped.

    What was skipped is said in one :class:`FolderScanWarning` per scan, with counts and examples.
    """
    skipped = SkippedPaths()
    found: list[Path] = []
    root = os.fspath(folder)
    key = _identity(os.stat(root))
    taken, listed = {key}, set()  # identities of the folders to scan, and of those listed
    pending = [(root, os.path.realpath(root), key)]  # (path as reached, resolved path, identity)
    file_links: list[Path] = []  # links to files, each file once
    linked: set[tuple[int, int]] = set()  # identities of their files
    while pending:
        links: list[tuple[str, str, str, Path]] = []  # (link, name, folder resolved, folder): next round
        while pending:
            path, real, key = pending.pop()
            try:
                with os.scandir(path) as entries:
                    listed.add(key)
                    base = Path(path)  # base / name: 1.6x faster than Path(entry.path) (Python 3.11)
                    for entry in entries:
                        name = entry.name
                        if name.startswith("."):
                            continue
                        if entry.is_symlink():
                            links.append((entry.path, name, real, base))
                        elif is_image_name(name) and entry.is_file(follow_symlinks=False):
                            found.append(base / name)
                        elif entry.is_dir(follow_symlinks=False):
                            key = _identity(entry.stat(follow_symlinks=False))
                            if key in taken:  # a bind mount of a folder already scanned
                                skipped.repeated_folders.append(entry.path)
                            else:
                                taken.add(key)
                                pending.append((entry.path, os.path.join(real, name), key))
            except OSError as error:
                skipped.unreadable_folders.append(f"{path}: {error.strerror or error}")
        for link, name, where, base in sorted(links, key=itemgetter(0)):
            try:
                status = os.stat(link)
            except OSError:
                skipped.broken_links.append(link)
                continue
            key = _identity(status)
            if stat.S_ISDIR(status.st_mode):
                target = os.path.realpath(link)
                if where == target or where.startswith(os.path.join(target, "")):
                    skipped.link_loops.append(link)
                elif key in taken:
                    skipped.repeated_folders.append(link)
                else:
                    taken.add(key)
                    pending.append((link, target, key))
            elif stat.S_ISREG(status.st_mode) and is_image_name(name):
                if key in linked:
                    skipped.duplicate_files.append(link)
                else:
                    linked.add(key)
                    file_links.append(base / name)
    if found:  # else a folder of links only (a link farm): no target can be listed already
        folder_keys: dict[str, tuple[int, int]] = {}
        listed_already = {link for link in file_links if _lists_target(link, listed, folder_keys)}
        skipped.duplicate_files += [os.fspath(link) for link in file_links if link in listed_already]
        file_links = [link for link in file_links if link not in listed_already]
    found += file_links
    if summary := skipped.summary():
        warnings.warn(f"scanning {folder} skipped {summary}", FolderScanWarning, stacklevel=4)
    if not found:
        raise ValueError(
            f"no images found under {folder}: looked for {', '.join(IMAGE_EXTENSIONS)} files "
            "(any case) in it and its subfolders" + (f" (skipped {summary})" if summary else "")
        )
    return found


def _lists_target(link: Path, listed: set[tuple[int, int]], folder_keys: dict[str, tuple[int, int]]) -> bool:
    """Whether the file ``link`` points to is a plain entry that the scan of its folder listed.

    Its folder is ``os.stat``-ed once (``folder_keys`` caches by path): a link farm of N files costs
    N ``readlink`` and ``lstat`` calls, not a full path resolution each.
    """
    try:
        target = os.path.join(link.parent, os.readlink(link))
        if os.path.islink(target):  # a chain of links: resolve it all
            target = os.path.realpath(target)
        folder, name = os.path.split(target)
        if folder not in folder_keys:
            folder_keys[folder] = _identity(os.stat(folder))
    except OSError:  # changed since its stat: not listed here
        return False
    return not name.startswith(".") and is_image_name(name) and folder_keys[folder] in listed


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
