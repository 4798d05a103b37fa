"""Finding images: folders, file lists, explicit files, ``builtin``; the cache helpers."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from selfsup_color.data import BUILTIN_PHOTOS, extract_archive, find_images, load_rgb
from selfsup_color.data.packed import PackedPaths
from selfsup_color.io import write_atomic

from .images import picture, save


def test_folder_is_scanned_recursively_case_insensitively(tmp_path: Path) -> None:
    names = ["a.jpg", "b.JPEG", "sub/c.png", "sub/deeper/d.WebP", "e.bmp", "f.GIF", "g.tif", "sub/h.TIFF"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    for ignored in ["notes.txt", "model.ckpt", ".hidden.jpg", "._a.jpg", ".git/x.png", "jpg"]:
        (tmp_path / ignored).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / ignored).touch()
    found = find_images(tmp_path)
    assert found == sorted(tmp_path / n for n in names)
    assert all(p.is_absolute() for p in found)


def test_file_list_resolves_relative_paths_against_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = save(tmp_path / "images" / "one.png", picture(8, 8))
    second = save(tmp_path / "other" / "two.jpg", picture(8, 8))
    elsewhere = save(tmp_path / "three.png", picture(8, 8))
    listing = tmp_path / "lists" / "train.txt"
    listing.parent.mkdir()
    listing.write_text(f"# training images\n../images/one.png\n\n  ../other/two.jpg  \n{elsewhere}\n")
    monkeypatch.chdir(tmp_path / "images")  # relative entries must not depend on the working folder
    assert find_images(listing) == sorted([first, second, elsewhere])
    assert find_images("../lists/train.txt") == sorted([first, second, elsewhere])


def test_file_list_errors_name_the_list_and_the_file(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("gone.jpg\n")
    with pytest.raises(FileNotFoundError, match=r"list\.txt.*gone\.jpg"):
        find_images(listing)
    listing.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match=r"list\.txt lists no files"):
        find_images(listing)


def test_missing_path_empty_folder_and_odd_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_images(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no images found under .*empty"):
        find_images(tmp_path / "empty")
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "readme.md").touch()
    with pytest.raises(ValueError, match="texts"):
        find_images(tmp_path / "texts")
    with pytest.raises(ValueError, match="no image source"):
        find_images([])


def test_one_finder_for_every_command(tmp_path: Path, private_cache: Path) -> None:
    """Where colorize's former ``expand_inputs`` and ``find_images`` disagreed, ``find_images`` decides
    (``colorize``, ``evaluate`` and ``prior`` all read their inputs through it).

    Hidden files in folders are skipped, a ``.txt`` file is a list, ``builtin`` means the photos,
    and a file named explicitly is kept whatever its ending (Pillow may read it).
    """
    for name in [
        "b.JPG",
        "a.png",
        "sub/deep/c.TiFF",
        "notes.txt",
        "sub/e.jpeg.bak",
        ".hidden.png",
        ".git/x.png",
    ]:
        (tmp_path / "dir" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "dir" / name).touch()
    explicit, hidden = tmp_path / "single.heic", tmp_path / "dir" / ".hidden.png"
    explicit.touch()
    listed = tmp_path / "list.txt"
    listed.write_text("dir/a.png\nsingle.heic\n")
    found = find_images([tmp_path / "dir", str(explicit), hidden])
    names = ["dir/.hidden.png", "dir/a.png", "dir/b.JPG", "dir/sub/deep/c.TiFF", "single.heic"]
    assert found == sorted(tmp_path / n for n in names)
    assert find_images(listed) == [tmp_path / "dir" / "a.png", explicit]
    assert find_images("builtin") == find_images("builtin:train") and len(find_images("builtin")) > 1


def test_explicit_files_and_mixed_sources_merge_without_duplicates(tmp_path: Path) -> None:
    a = save(tmp_path / "dir" / "a.png", picture(8, 8))
    b = save(tmp_path / "b.png", picture(8, 8))
    assert find_images([b, str(a)]) == sorted([a, b])
    assert find_images([tmp_path / "dir", a, tmp_path / "dir" / ".." / "b.png"]) == sorted([a, b])


def test_builtin_splits_are_disjoint_photos_that_load(private_cache: Path) -> None:
    train, val = find_images("builtin"), find_images("builtin:val")
    assert find_images("builtin:train") == train
    assert [p.stem for p in train] == sorted(BUILTIN_PHOTOS["train"])
    assert [p.stem for p in val] == sorted(BUILTIN_PHOTOS["val"])
    assert not {p.name for p in train} & {p.name for p in val}
    assert all(p.is_relative_to(private_cache) for p in train + val)
    for path in train + val:
        image = load_rgb(path)
        pixels = np.asarray(image, dtype=np.int16)
        assert image.mode == "RGB" and min(image.size) >= 256
        assert np.abs(pixels[..., 0] - pixels[..., 1]).mean() > 1  # colour, not gray
    stamps = [p.stat().st_mtime_ns for p in train]
    assert [p.stat().st_mtime_ns for p in find_images("builtin")] == stamps  # written once
    assert not list(private_cache.rglob("*.partial"))
    with pytest.raises(ValueError, match="unknown builtin split 'test'"):
        find_images("builtin:test")


def test_write_atomic_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    def fail(path: Path) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "out.png", fail)
    assert list(tmp_path.iterdir()) == []
    write_atomic(tmp_path / "out.bin", lambda path: path.write_bytes(b"whole"))
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_extract_archive_once(tmp_path: Path) -> None:
    save(tmp_path / "src" / "set" / "x" / "a.png", picture(8, 8))
    archive = tmp_path / "set.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "src" / "set", arcname="set")
    root = extract_archive(archive, tmp_path / "cache")
    assert root == tmp_path / "cache" / "set" and find_images(root) == [root / "x" / "a.png"]
    archive.unlink()  # a second call must not need the archive
    assert extract_archive(archive, tmp_path / "cache") == root
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["set"]

    with tarfile.open(tmp_path / "other.tar", "w") as tar:
        tar.add(tmp_path / "src" / "set", arcname="wrong")
    with pytest.raises(ValueError, match="other"):
        extract_archive(tmp_path / "other.tar", tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="absent"):
        extract_archive(tmp_path / "absent.tar", tmp_path / "cache")


def test_packed_paths_behave_like_a_list() -> None:
    paths = ["/a/b.jpg", "relative/ünïcode.png", "", os.path.join("x", "y.gif")]
    packed = PackedPaths(paths)
    assert len(packed) == 4 and list(packed) == paths
    assert packed[-1] == paths[-1] and packed[1:3] == paths[1:3]
    with pytest.raises(IndexError):
        packed[4]
    assert len(PackedPaths([])) == 0


def test_load_rgb_of_a_plain_file(tmp_path: Path) -> None:
    array = picture(30, 20)
    image = load_rgb(save(tmp_path / "x.png", array))
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), array)
