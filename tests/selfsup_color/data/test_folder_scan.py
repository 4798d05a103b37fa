"""The folder scan on links (issue 16): it ends on any link structure, lists each real file once and says
what it skipped; file lists keep each file once; ``fit``'s data module and ``prior`` take their files
from it.

Expected results are written out by hand, or (for random link structures) computed by a brute-force
closure over resolved paths. A scan that does not end fails on a bound of folder listings instead of
hanging the suite.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import pytest

from selfsup_color.data import ColorizationDataModule, find_images
from selfsup_color.data.files import FolderScanWarning, is_image_name
from selfsup_color.pretrain.commands import prior
from selfsup_color.pretrain.prior_pass import read_prior

from .images import picture, save

LISTINGS = 300
"""Folder listings a test may make: each tree below has fewer than 30 real folders."""


@pytest.fixture(autouse=True)
def bounded_listings(monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.scandir`` (which ``os.walk`` and the scan use) raises after :data:`LISTINGS` calls."""
    calls, scandir = [0], os.scandir

    def counted(path: str | os.PathLike[str] = ".") -> object:
        calls[0] += 1
        if calls[0] > LISTINGS:
            raise RuntimeError(f"more than {LISTINGS} folder listings: the scan does not end ({path})")
        return scandir(path)

    monkeypatch.setattr(os, "scandir", counted)


def touch(root: Path, *names: str) -> list[Path]:
    """Empty files ``root / name`` (folders created); their paths."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()
    return [root / name for name in names]


def link(path: Path, target: str | Path) -> Path:
    """A symbolic link ``path -> target`` (folders created); ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


def scan(source: str | Path, *skipped: str) -> list[Path]:
    """``find_images(source)``, checking that no real file comes twice and that one warning names each of
    ``skipped`` (no warning when ``skipped`` is empty)."""
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        found = find_images(source)
    said = [str(r.message) for r in records if issubclass(r.category, FolderScanWarning)]
    assert len(said) == (1 if skipped else 0)
    for text in skipped:
        assert text in said[0]
    assert len({os.path.realpath(p) for p in found}) == len(found)
    return found


@pytest.mark.parametrize(
    "links",
    [{"self": "."}, {"up": ".."}, {"self": ".", "up": ".."}, {"sub/top": "../.."}, {"sub/root": "ROOT"}],
    ids=["self", "up", "self-and-up", "grandparent", "root"],
)
def test_links_to_the_folder_itself_or_its_parents_end_and_list_each_image_once(
    tmp_path: Path, links: dict[str, str]
) -> None:
    """The issue's ``a/self -> .`` and ``a/up -> ..`` (each image 41 times, or endless, before)."""
    root = tmp_path / "a"
    images = touch(root, "x.png", "sub/y.jpg")
    touch(tmp_path, "b.png")  # beside a/: reached only through a link to a parent
    for name, target in links.items():
        link(root / name, root if target == "ROOT" else target)
    found = scan(root, f"link loops: {len(links)}", *(str(root / name) for name in links))
    assert found == sorted(images)


def test_links_to_siblings_and_outside_folders_are_followed_once(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    x, y = touch(root, "s1/x.png", "s2/y.png")
    touch(outside, "z.png", "inner/w.png")
    link(root / "s1" / "to_s2", "../s2")  # a sibling: its images keep their real names
    link(root / "ext", "../outside")  # outside the tree: followed, once
    link(root / "s2" / "ext_again", "../../outside")
    link(root / "s1" / "inner", "../../outside/inner")
    found = scan(root, "repeated folders: 3", str(root / "s1" / "to_s2"), str(root / "s2" / "ext_again"))
    assert found == [root / "ext" / "z.png", root / "s1" / "inner" / "w.png", x, y]
    via = link(tmp_path / "via", root)  # a link given as the folder: its files under the link's name
    assert scan(via, "repeated folders: 3") == [via / p.relative_to(root) for p in found]
    assert scan(outside) == [outside / "inner" / "w.png", outside / "z.png"]  # no link: no warning


def test_broken_links_are_skipped_and_counted(tmp_path: Path) -> None:
    (x,) = touch(tmp_path, "x.png")
    link(tmp_path / "gone.jpg", "missing.jpg")
    link(tmp_path / "gone", "missing_folder")
    link(tmp_path / "itself.jpg", "itself.jpg")  # a link loop of one link: ELOOP
    assert scan(tmp_path, "broken links: 3", str(tmp_path / "gone.jpg")) == [x]
    x.unlink()
    with pytest.warns(FolderScanWarning), pytest.raises(ValueError, match=r"no images.*broken links: 3"):
        find_images(tmp_path)


def test_a_file_reached_through_links_is_listed_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (real,) = touch(root, "real.png")
    touch(tmp_path, "out.png", "notes.dat")
    touch(root, ".cache/c.png")  # hidden: listed only through the link below, under the link's name
    link(root / "l1.png", "real.png")
    link(root / "sub" / "l2.jpg", "../real.png")
    link(root / "o1.png", "../out.png")  # outside the tree: listed once, under the first link's name
    link(root / "sub" / "o2.png", "../../out.png")
    link(root / "shown.png", "../notes.dat")  # an image name for a file the scan would not list
    link(root / "c.png", ".cache/c.png")
    link(root / ".hidden.png", "real.png")  # hidden names are skipped before anything else
    link(root / "sub" / "chain.png", "../l1.png")  # a link to a link
    found = scan(root, "duplicate files: 4", str(root / "l1.png"), str(root / "sub" / "l2.jpg"))
    assert found == [root / "c.png", root / "o1.png", real, root / "shown.png"]


def test_a_file_list_keeps_each_file_once_under_its_first_name(tmp_path: Path) -> None:
    """A list is not a folder scan, but ``find_images`` never returns a file twice: otherwise one file
    could land in both train and val under ``val_fraction``."""
    a, b = touch(tmp_path, "a.png", "b.png")
    link(tmp_path / "link.png", "a.png")
    listing = tmp_path / "list.txt"
    listing.write_text("a.png\nb.png\na.png\n./a.png\nlink.png\n")
    assert scan(listing, "duplicate files: 3", str(tmp_path / "link.png")) == [a, b]
    listing.write_text("link.png\na.png\n")  # the first listed name is kept
    assert scan(listing, "duplicate files: 1") == [tmp_path / "link.png"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any folder")
def test_an_unreadable_folder_is_skipped_and_counted(tmp_path: Path) -> None:
    (x,) = touch(tmp_path, "x.png")
    touch(tmp_path, "locked/z.png")
    (tmp_path / "locked").chmod(0)
    try:
        assert scan(tmp_path, "unreadable folders: 1", str(tmp_path / "locked")) == [x]
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_a_folder_that_cannot_be_listed_is_skipped_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same as the permission test above, for any user: the listing fails as it would there."""
    (x,) = touch(tmp_path, "x.png")
    touch(tmp_path, "locked/z.png", "locked/deeper/w.png")
    scandir = os.scandir

    def denied(path: str | os.PathLike[str] = ".") -> object:
        if Path(path) == tmp_path / "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denied)
    assert scan(tmp_path, "unreadable folders: 1", f"{tmp_path / 'locked'}: Permission denied") == [x]


def reachable_images(root: Path) -> set[str]:
    """Brute force: resolved paths of the image files reachable from ``root``, following every link,
    each resolved folder listed once (hidden names skipped, as in the scan)."""
    files, folders, stack = set(), set(), [os.path.realpath(root)]
    while stack:
        folder = stack.pop()
        if folder in folders:
            continue
        folders.add(folder)
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if name.startswith("."):
                continue
            if os.path.isdir(path):
                stack.append(os.path.realpath(path))
            elif os.path.isfile(path) and is_image_name(name):
                files.add(os.path.realpath(path))
    return files


@pytest.mark.filterwarnings("ignore::selfsup_color.data.files.FolderScanWarning")
@pytest.mark.parametrize("seed", range(12))
def test_random_link_structures_end_with_each_reachable_image_once(tmp_path: Path, seed: int) -> None:
    """Links among the folders and files of a tree and an outside folder, loops and dangling links
    included (none to the tree's parents: following those is what a loop is not)."""
    rng = random.Random(seed)
    root, outside = tmp_path / "root", tmp_path / "outside"
    folders = [root, outside]
    for i in range(8):
        folders.append(rng.choice(folders[:1] + folders[2:]) / f"d{i}")
    files = [
        f / f"f{i}.{rng.choice(['png', 'jpg', 'txt'])}" for i, f in enumerate(rng.choices(folders, k=14))
    ]
    touch(tmp_path, *(os.path.relpath(f, tmp_path) for f in files))
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    links: list[Path] = []
    for i in range(12):
        place = rng.choice(folders)
        target = rng.choice([*folders, *files, *links, place / "missing.png"])
        relative = rng.random() < 0.5
        links.append(link(place / f"l{i}.png", os.path.relpath(target, place) if relative else target))
    found = find_images(root)
    assert len({os.path.realpath(p) for p in found}) == len(found)
    assert {os.path.realpath(p) for p in found} == reachable_images(root)
    assert find_images(root) == found  # deterministic


def test_fit_and_prior_take_each_image_of_a_looping_folder_once(tmp_path: Path) -> None:
    root = tmp_path / "a"
    images = [save(root / f"sub{i % 2}" / f"{i}.png", picture(40, 36, seed=i)) for i in range(5)]
    link(root / "self", ".")
    link(root / "up", "..")
    link(root / "sub0" / "sibling", "../sub1")
    with pytest.warns(FolderScanWarning, match="link loops: 2.*repeated folders: 1"):
        data = ColorizationDataModule(train=str(root), resize=36, crop=32, batch_size=4, num_workers=0)
    assert data.train_files == sorted(images)
    with pytest.warns(FolderScanWarning, match="link loops: 2"):
        prior(
            str(root), tmp_path / "out", images=100, resize=36, crop=32, batch_size=4, workers=0, device="cpu"
        )
    assert read_prior(tmp_path / "out" / "prior.json").n_images == 5
